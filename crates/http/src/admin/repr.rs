//! Keycloak's JSON representations (RealmRepresentation, ClientRepresentation,
//! UserRepresentation, CredentialRepresentation, UserSessionRepresentation).
//! Every field is optional on input: absent means "keep" on update, "default"
//! on create; unknown fields are ignored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealmRep {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub realm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub enabled: Option<bool>,
    pub access_token_lifespan: Option<i64>,
    pub sso_session_max_lifespan: Option<i64>,
    pub default_signature_algorithm: Option<String>,
    /// Keycloak's realm attributes. On update, the attributes given are set
    /// and the others kept; a `null` or empty value removes one.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub attributes: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientRep {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub public_client: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub web_origins: Option<Vec<String>>,
    pub standard_flow_enabled: Option<bool>,
    pub direct_access_grants_enabled: Option<bool>,
    pub service_accounts_enabled: Option<bool>,
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_authenticator_type: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRep {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub value: Option<String>,
    pub temporary: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRep {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm_roles: Option<Vec<String>>,
    #[serde(skip_serializing)]
    pub credentials: Option<Vec<CredentialRep>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_actions: Option<Vec<String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionRep {
    pub id: String,
    pub username: String,
    pub user_id: String,
    pub ip_address: Option<String>,
    pub start: i64,
    pub last_access: i64,
    pub remember_me: bool,
    /// Client internal id -> clientId, as Keycloak sends it.
    pub clients: BTreeMap<String, String>,
    /// Tessera additions: the session's device and user agent, and for
    /// consent logins the application context and the app's origin.
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    pub expires: i64,
}
