//! `/admin/realms`: list, create, read, update and delete realms.

use super::repr::RealmRep;
use super::{created, realm, Admin};
use crate::error::AdminError;
use crate::extract::AdminJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use tessera_core::time::now_ms;
use tessera_core::{Realm, SigningAlg};
use tessera_oauth::data::{Failure, StoreError};
use tessera_oauth::provision::MASTER_REALM;
use tessera_oauth::Services;

/// Ten years: longer sessions are a mistake, and it keeps expiry arithmetic far from overflow.
const MAX_SESSION_SECS: i64 = 10 * 365 * 86_400;

fn to_rep(r: &Realm) -> RealmRep {
    RealmRep {
        id: Some(r.id.clone()),
        realm: Some(r.name.clone()),
        display_name: r.display_name.clone(),
        enabled: Some(r.enabled),
        access_token_lifespan: Some(r.access_token_lifespan_secs),
        sso_session_max_lifespan: Some(r.session_max_lifespan_secs),
        default_signature_algorithm: Some(r.signing_alg.as_str().to_string()),
        attributes: Some(
            r.attributes
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        ),
    }
}

/// Bounds on realm attributes: they are read on every request of the realm.
const MAX_ATTRIBUTES: usize = 100;
const MAX_ATTRIBUTE_NAME: usize = 255;
const MAX_ATTRIBUTE_VALUE: usize = 4096;

/// Sets the attributes given (Keycloak's merge: the others stay; a `null`
/// or empty value removes one), within the bounds above.
fn apply_attributes(
    attributes: &mut std::collections::BTreeMap<String, String>,
    given: std::collections::BTreeMap<String, Option<String>>,
) -> Result<(), AdminError> {
    for (name, value) in given {
        if name.is_empty() || name.len() > MAX_ATTRIBUTE_NAME || name.chars().any(char::is_control)
        {
            return Err(AdminError::bad_request(format!(
                "attribute names must be 1-{MAX_ATTRIBUTE_NAME} characters without control characters"
            )));
        }
        match value.filter(|v| !v.is_empty()) {
            Some(v) if v.len() > MAX_ATTRIBUTE_VALUE || v.contains('\0') => {
                return Err(AdminError::bad_request(format!(
                    "attribute {name}: values are at most {MAX_ATTRIBUTE_VALUE} bytes, without NUL"
                )));
            }
            Some(v) => {
                attributes.insert(name, v);
            }
            None => {
                attributes.remove(&name);
            }
        }
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(AdminError::bad_request(format!(
            "a realm has at most {MAX_ATTRIBUTES} attributes"
        )));
    }
    Ok(())
}

/// Realm names become URL path segments: keep them to a safe alphabet.
fn valid_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(AdminError::bad_request(
            "realm name must be 1-64 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

/// Applies the fields present in `rep` to `realm`, validating each.
fn apply(realm: &mut Realm, rep: RealmRep) -> Result<(), AdminError> {
    if let Some(name) = rep.realm {
        valid_name(&name)?;
        realm.name = name;
    }
    if let Some(d) = rep.display_name {
        realm.display_name = Some(d).filter(|d| !d.is_empty());
    }
    if let Some(e) = rep.enabled {
        realm.enabled = e;
    }
    if let Some(secs) = rep.access_token_lifespan {
        if !(10..=86_400).contains(&secs) {
            return Err(AdminError::bad_request(
                "accessTokenLifespan must be between 10 and 86400 seconds",
            ));
        }
        realm.access_token_lifespan_secs = secs;
    }
    if let Some(secs) = rep.sso_session_max_lifespan {
        if !(60..=MAX_SESSION_SECS).contains(&secs) {
            return Err(AdminError::bad_request(format!(
                "ssoSessionMaxLifespan must be between 60 and {MAX_SESSION_SECS} seconds"
            )));
        }
        realm.session_max_lifespan_secs = secs;
    }
    if let Some(alg) = rep.default_signature_algorithm {
        let alg: SigningAlg = alg.parse().map_err(AdminError::bad_request)?;
        if alg == SigningAlg::RS512 {
            return Err(AdminError::bad_request(
                "defaultSignatureAlgorithm must be RS256, ES256 or EdDSA (RS512 is reserved for machine tokens)",
            ));
        }
        realm.signing_alg = alg;
    }
    if let Some(attributes) = rep.attributes {
        apply_attributes(&mut realm.attributes, attributes)?;
    }
    Ok(())
}

#[utoipa::path(
    operation_id = "realms_list",
    get,
    path = "/admin/realms",
    tag = "admin",
    summary = "List realms",
    security(("bearer" = [])),
    responses((status = 200, description = "Every realm", body = Vec<RealmRep>), crate::error::AdminErrors)
)]
pub async fn list(
    _: Admin,
    State(svc): State<Services>,
) -> Result<Json<Vec<RealmRep>>, AdminError> {
    Ok(Json(
        svc.admin.list_realms().await?.iter().map(to_rep).collect(),
    ))
}

#[utoipa::path(
    operation_id = "realms_create",
    post,
    path = "/admin/realms",
    tag = "admin",
    summary = "Create a realm",
    security(("bearer" = [])),
    request_body = RealmRep,
    responses((status = 201, description = "Created; `Location` names the realm", headers(("Location" = String))), crate::error::AdminErrors)
)]
pub async fn create(
    _: Admin,
    State(svc): State<Services>,
    AdminJson(rep): AdminJson<RealmRep>,
) -> Result<Response, AdminError> {
    let name = rep
        .realm
        .clone()
        .ok_or_else(|| AdminError::bad_request("realm name is missing"))?;
    let mut realm = Realm::new(&name, now_ms());
    apply(&mut realm, rep)?;
    svc.admin.create_realm(&realm).await.map_err(|e| match e {
        StoreError::Conflict(_) => AdminError::conflict(format!("Realm {name} already exists")),
        other => other.into(),
    })?;
    Ok(created(format!(
        "{}/admin/realms/{}",
        svc.config.public_url, realm.name
    )))
}

#[utoipa::path(
    operation_id = "realms_get",
    get,
    path = "/admin/realms/{realm}",
    tag = "admin",
    summary = "Read a realm",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, body = RealmRep), crate::error::AdminErrors)
)]
pub async fn get(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
) -> Result<Json<RealmRep>, AdminError> {
    Ok(Json(to_rep(&realm(&svc, &name).await?)))
}

#[utoipa::path(
    operation_id = "realms_update",
    put,
    path = "/admin/realms/{realm}",
    tag = "admin",
    summary = "Update a realm (absent fields are kept)",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name")),
    request_body = RealmRep,
    responses((status = 204, description = "Updated"), crate::error::AdminErrors)
)]
pub async fn update(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
    AdminJson(rep): AdminJson<RealmRep>,
) -> Result<StatusCode, AdminError> {
    let mut realm = realm(&svc, &name).await?;
    let old = realm.clone();
    if name == MASTER_REALM
        && (rep.realm.as_deref().is_some_and(|n| n != MASTER_REALM) || rep.enabled == Some(false))
    {
        return Err(AdminError::bad_request(
            "the master realm cannot be renamed or disabled",
        ));
    }
    apply(&mut realm, rep)?;
    // A new algorithm rotates the key (the old one stays published until
    // its tokens expire).
    svc.admin
        .update_realm(&realm, &old)
        .await
        .map_err(|e| match e {
            Failure::Database(StoreError::Conflict(_)) => {
                AdminError::conflict(format!("Realm {} already exists", realm.name))
            }
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    operation_id = "realms_delete",
    delete,
    path = "/admin/realms/{realm}",
    tag = "admin",
    summary = "Delete a realm (not master)",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 204, description = "Deleted"), crate::error::AdminErrors)
)]
pub async fn delete(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminError> {
    if name == MASTER_REALM {
        return Err(AdminError::bad_request(
            "the master realm cannot be deleted",
        ));
    }
    let realm = realm(&svc, &name).await?;
    svc.admin.delete_realm(&realm).await?;
    Ok(StatusCode::NO_CONTENT)
}
