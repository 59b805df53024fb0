//! `/admin/realms/{realm}/clients`: OAuth clients and their secrets.
//! Secrets are stored only as SHA-256 hashes; server-generated ones are
//! derived from the master key so `GET .../client-secret` can show them again.

use super::repr::{ClientRep, UserRep};
use super::{created, realm, Admin};
use crate::error::AdminError;
use crate::extract::AdminJson;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use std::collections::BTreeMap;
use tessera_core::time::now_ms;
use tessera_core::{Client, TokenHash};
use tessera_oauth::data::{Failure, StoreError};
use tessera_oauth::Services;

fn to_rep(svc: &Services, c: &Client) -> ClientRep {
    ClientRep {
        id: Some(c.id.clone()),
        client_id: Some(c.client_id.clone()),
        name: c.name.clone(),
        enabled: Some(c.enabled),
        public_client: Some(c.public_client),
        secret: (!c.public_client && c.secret_generated).then(|| svc.admin.generated_secret(c)),
        redirect_uris: Some(c.redirect_uris.clone()),
        web_origins: Some(c.web_origins.clone()),
        standard_flow_enabled: Some(c.standard_flow_enabled),
        direct_access_grants_enabled: Some(c.direct_access_grants_enabled),
        service_accounts_enabled: Some(c.service_accounts_enabled),
        attributes: Some(c.attributes.clone()),
        protocol: Some("openid-connect".into()),
        client_authenticator_type: Some("client-secret".into()),
    }
}

fn validate_uris(uris: &[String], what: &str) -> Result<(), AdminError> {
    for u in uris {
        // Scripts and inline data are never places to send a browser to.
        let ok = url::Url::parse(u).is_ok_and(|p| {
            p.fragment().is_none() && !matches!(p.scheme(), "javascript" | "data" | "vbscript")
        }) || (what == "webOrigins" && u == "+");
        if !ok {
            return Err(AdminError::bad_request(format!(
                "{what} entry is not an absolute URL without fragment: {u}"
            )));
        }
    }
    Ok(())
}

/// Applies the fields present in `rep`; returns whether a new secret must be generated.
fn apply(c: &mut Client, rep: ClientRep) -> Result<bool, AdminError> {
    if let Some(id) = rep.client_id {
        if id.is_empty() || id.len() > 255 {
            return Err(AdminError::bad_request("clientId must be 1-255 characters"));
        }
        c.client_id = id;
    }
    if let Some(n) = rep.name {
        c.name = Some(n).filter(|n| !n.is_empty());
    }
    if let Some(v) = rep.enabled {
        c.enabled = v;
    }
    if let Some(v) = rep.public_client {
        c.public_client = v;
    }
    if let Some(uris) = rep.redirect_uris {
        validate_uris(&uris, "redirectUris")?;
        c.redirect_uris = uris;
    }
    if let Some(origins) = rep.web_origins {
        validate_uris(&origins, "webOrigins")?;
        c.web_origins = origins;
    }
    if let Some(v) = rep.standard_flow_enabled {
        c.standard_flow_enabled = v;
    }
    if let Some(v) = rep.direct_access_grants_enabled {
        c.direct_access_grants_enabled = v;
    }
    if let Some(v) = rep.service_accounts_enabled {
        c.service_accounts_enabled = v;
    }
    if let Some(a) = rep.attributes {
        c.attributes = a;
    }
    if c.public_client {
        c.secret_hash = None;
        c.secret_generated = false;
        return Ok(false);
    }
    match rep.secret.filter(|s| !s.is_empty()) {
        Some(secret) => {
            if secret.len() < 16 {
                tracing::warn!(client = %c.client_id, "administrator-supplied client secret is shorter than 16 characters");
            }
            c.secret_hash = Some(TokenHash::of(&secret));
            c.secret_generated = false;
            Ok(false)
        }
        None => Ok(c.secret_hash.is_none()),
    }
}

/// A client secret, as Keycloak's `CredentialRepresentation`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SecretRep {
    /// Always `secret`.
    #[serde(rename = "type")]
    type_: &'static str,
    /// Absent when the secret was set by an administrator (only its hash is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

impl SecretRep {
    fn secret(value: Option<String>) -> Self {
        Self {
            type_: "secret",
            value,
        }
    }
}

/// `GET .../clients` filters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ClientQuery {
    client_id: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::lenient_bool")]
    search: bool,
    first: Option<usize>,
    max: Option<usize>,
}

#[utoipa::path(
    operation_id = "clients_list",
    get,
    path = "/admin/realms/{realm}/clients",
    tag = "admin",
    summary = "List clients",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ClientQuery),
    responses((status = 200, body = Vec<ClientRep>), crate::error::AdminErrors)
)]
pub async fn list(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
    Query(q): Query<ClientQuery>,
) -> Result<Json<Vec<ClientRep>>, AdminError> {
    let realm = realm(&svc, &name).await?;
    let all = svc.admin.list_clients(&realm).await?;
    let reps = all
        .iter()
        .filter(|c| match &q.client_id {
            Some(id) if q.search => c.client_id.to_lowercase().contains(&id.to_lowercase()),
            Some(id) => &c.client_id == id,
            None => true,
        })
        .skip(q.first.unwrap_or(0))
        .take(q.max.unwrap_or(usize::MAX))
        .map(|c| to_rep(&svc, c))
        .collect();
    Ok(Json(reps))
}

#[utoipa::path(
    operation_id = "clients_create",
    post,
    path = "/admin/realms/{realm}/clients",
    tag = "admin",
    summary = "Create a client",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name")),
    request_body = ClientRep,
    responses((status = 201, description = "Created; `Location` names the client", headers(("Location" = String))), crate::error::AdminErrors)
)]
pub async fn create(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
    AdminJson(rep): AdminJson<ClientRep>,
) -> Result<Response, AdminError> {
    let realm = realm(&svc, &name).await?;
    let client_id = rep
        .client_id
        .clone()
        .ok_or_else(|| AdminError::bad_request("clientId is missing"))?;
    let mut c = Client {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        client_id: client_id.clone(),
        name: None,
        enabled: true,
        public_client: false,
        secret_hash: None,
        secret_generation: 0,
        secret_generated: false,
        redirect_uris: vec![],
        web_origins: vec![],
        standard_flow_enabled: true,
        direct_access_grants_enabled: false,
        service_accounts_enabled: false,
        attributes: BTreeMap::new(),
        created_at: now_ms(),
    };
    if apply(&mut c, rep)? {
        svc.admin.next_secret(&mut c);
    }
    svc.admin.create_client(&c).await.map_err(|e| match e {
        Failure::Database(StoreError::Conflict(_)) => {
            AdminError::conflict(format!("Client {client_id} already exists"))
        }
        other => other.into(),
    })?;
    Ok(created(format!(
        "{}/admin/realms/{}/clients/{}",
        svc.config.public_url, realm.name, c.id
    )))
}

async fn load(svc: &Services, realm_name: &str, id: &str) -> Result<Client, AdminError> {
    let realm = realm(svc, realm_name).await?;
    svc.admin
        .client(&realm, id)
        .await?
        .ok_or_else(|| AdminError::not_found("client"))
}

#[utoipa::path(
    operation_id = "clients_get",
    get,
    path = "/admin/realms/{realm}/clients/{id}",
    tag = "admin",
    summary = "Read a client",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "The client's internal id (`id`, not `clientId`)")),
    responses((status = 200, body = ClientRep), crate::error::AdminErrors)
)]
pub async fn get(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<ClientRep>, AdminError> {
    Ok(Json(to_rep(&svc, &load(&svc, &name, &id).await?)))
}

#[utoipa::path(
    operation_id = "clients_update",
    put,
    path = "/admin/realms/{realm}/clients/{id}",
    tag = "admin",
    summary = "Update a client (absent fields are kept)",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "The client's internal id (`id`, not `clientId`)")),
    request_body = ClientRep,
    responses((status = 204, description = "Updated"), crate::error::AdminErrors)
)]
pub async fn update(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
    AdminJson(rep): AdminJson<ClientRep>,
) -> Result<StatusCode, AdminError> {
    let mut c = load(&svc, &name, &id).await?;
    let mut rep = rep;
    // A representation read with GET carries the generated secret; sending it
    // back unchanged must not turn it into an administrator-supplied one.
    if c.secret_generated
        && rep
            .secret
            .as_deref()
            .is_some_and(|s| c.secret_hash.as_ref().is_some_and(|h| h.matches(s)))
    {
        rep.secret = None;
    }
    if apply(&mut c, rep)? {
        svc.admin.next_secret(&mut c);
    }
    // A disabled client's sessions end (Administration::update_client).
    svc.admin.update_client(&c).await.map_err(|e| match e {
        Failure::Database(StoreError::Conflict(_)) => {
            AdminError::conflict(format!("Client {} already exists", c.client_id))
        }
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    operation_id = "clients_delete",
    delete,
    path = "/admin/realms/{realm}/clients/{id}",
    tag = "admin",
    summary = "Delete a client and end its sessions",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "The client's internal id (`id`, not `clientId`)")),
    responses((status = 204, description = "Deleted"), crate::error::AdminErrors)
)]
pub async fn delete(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let c = load(&svc, &name, &id).await?;
    // Its sessions go with it; their sockets are told first.
    svc.admin.delete_client(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Keycloak's CredentialRepresentation of the secret. An administrator-
/// supplied secret cannot be shown again (only its hash is kept).
#[utoipa::path(
    operation_id = "clients_get_secret",
    get,
    path = "/admin/realms/{realm}/clients/{id}/client-secret",
    tag = "admin",
    summary = "Read the client secret (only a generated one is shown)",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "The client's internal id (`id`, not `clientId`)")),
    responses((status = 200, body = SecretRep), crate::error::AdminErrors)
)]
pub async fn get_secret(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<SecretRep>, AdminError> {
    let c = load(&svc, &name, &id).await?;
    if c.public_client {
        return Err(AdminError::bad_request("public clients have no secret"));
    }
    Ok(Json(if c.secret_generated {
        SecretRep::secret(Some(svc.admin.generated_secret(&c)))
    } else {
        SecretRep::secret(None)
    }))
}

/// `POST .../client-secret`: replaces the secret with a new generated one.
#[utoipa::path(
    operation_id = "clients_regenerate_secret",
    post,
    path = "/admin/realms/{realm}/clients/{id}/client-secret",
    tag = "admin",
    summary = "Generate a new client secret",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "The client's internal id (`id`, not `clientId`)")),
    responses((status = 200, body = SecretRep), crate::error::AdminErrors)
)]
pub async fn regenerate_secret(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<SecretRep>, AdminError> {
    let mut c = load(&svc, &name, &id).await?;
    if c.public_client {
        return Err(AdminError::bad_request("public clients have no secret"));
    }
    let secret = svc.admin.next_secret(&mut c);
    svc.admin.store_secret(&c).await?;
    Ok(Json(SecretRep::secret(Some(secret))))
}

/// `GET .../clients/{id}/service-account-user`: the identity the client acts
/// as in the client_credentials grant. Its `id` is the `sub` of those tokens.
#[utoipa::path(
    operation_id = "clients_service_account_user",
    get,
    path = "/admin/realms/{realm}/clients/{id}/service-account-user",
    tag = "admin",
    summary = "The client's service-account user",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "The client's internal id (`id`, not `clientId`)")),
    responses((status = 200, body = UserRep), crate::error::AdminErrors)
)]
pub async fn service_account_user(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<UserRep>, AdminError> {
    let c = load(&svc, &name, &id).await?;
    if c.public_client || !c.service_accounts_enabled {
        return Err(AdminError::bad_request(
            "service accounts are not enabled for this client",
        ));
    }
    Ok(Json(UserRep {
        id: Some(c.id.clone()),
        username: Some(format!("service-account-{}", c.client_id.to_lowercase())),
        enabled: Some(true),
        email_verified: Some(false),
        created_timestamp: Some(c.created_at),
        ..UserRep::default()
    }))
}
