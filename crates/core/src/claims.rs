//! JWT claim sets Tessera issues. The `typ` claim separates token kinds so
//! that an access token can never be accepted as an ID token or vice versa;
//! refresh tokens are opaque and cannot be confused with either.

use serde::{Deserialize, Serialize};

/// `typ` claim of access tokens (Keycloak's value).
pub const TYP_ACCESS: &str = "Bearer";
/// `typ` claim of ID tokens (Keycloak's value).
pub const TYP_ID: &str = "ID";
/// `typ` claim of consent-login access tokens: never accepted where a user's
/// OAuth access token is expected, and vice versa.
pub const TYP_CONSENT: &str = "Consent";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RealmAccess {
    pub roles: Vec<String>,
}

/// Claims of an access token, in Keycloak's shape.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub typ: String,
    pub azp: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_state: Option<String>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub realm_access: Option<RealmAccess>,
}

/// Claims of an OpenID Connect ID token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdClaims {
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub typ: String,
    pub azp: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub at_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

/// Claims of a consent-login access token (Verida's storage-node token): a
/// database can check it with the JWKS alone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsentAccessClaims {
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    /// The per-(DID, context) database username.
    pub sub: String,
    pub typ: String,
    /// Verida's token type: always `"access"`.
    #[serde(rename = "type")]
    pub token_type: String,
    pub azp: String,
    pub sid: String,
    pub did: String,
    #[serde(rename = "contextName")]
    pub context_name: String,
}
