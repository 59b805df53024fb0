//! `/admin/realms/{realm}/keys` (Keycloak's KeysMetadataRepresentation) and
//! `POST .../keys/rotate`, Tessera's rotation endpoint (Keycloak rotates by
//! adding a key provider; here one call does it).

use super::{realm, Admin};
use crate::error::AdminError;
use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use std::collections::BTreeMap;
use tessera_core::model::KeyStatus;
use tessera_oauth::keyring::RealmKeys;
use tessera_oauth::Services;

/// Keycloak's `KeysMetadataRepresentation`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeysMetadata {
    /// Algorithm -> the `kid` that signs with it now.
    active: BTreeMap<&'static str, String>,
    keys: Vec<KeyMetadata>,
}

/// One key, as Keycloak's `KeyMetadataRepresentation`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyMetadata {
    kid: String,
    #[schema(example = "RS256")]
    algorithm: &'static str,
    /// `RSA`, `EC` or `OKP`.
    #[serde(rename = "type")]
    type_: &'static str,
    /// `ACTIVE` (signs) or `PASSIVE` (still published, verifies only).
    status: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
    /// The DER public key, base64.
    public_key: String,
    /// Milliseconds since the epoch.
    created_at: i64,
    /// Milliseconds since the epoch: the key is published until then.
    valid_to: Option<i64>,
}

fn render(keys: &RealmKeys) -> KeysMetadata {
    let mut active = BTreeMap::new();
    let list = keys
        .records
        .iter()
        .map(|r| {
            if r.status == KeyStatus::Active {
                active.insert(r.alg.as_str(), r.kid.clone());
            }
            KeyMetadata {
                kid: r.kid.clone(),
                algorithm: r.alg.as_str(),
                type_: match r.alg.as_str() {
                    "ES256" => "EC",
                    "EdDSA" => "OKP",
                    _ => "RSA",
                },
                status: if r.status == KeyStatus::Active {
                    "ACTIVE"
                } else {
                    "PASSIVE"
                },
                use_: "SIG",
                public_key: STANDARD.encode(&r.public_key_der),
                created_at: r.created_at,
                valid_to: r.visible_until,
            }
        })
        .collect();
    KeysMetadata { active, keys: list }
}

#[utoipa::path(
    operation_id = "keys_list",
    get,
    path = "/admin/realms/{realm}/keys",
    tag = "admin",
    summary = "The realm's signing keys",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, body = KeysMetadata), crate::error::AdminErrors)
)]
pub async fn list(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
) -> Result<Json<KeysMetadata>, AdminError> {
    let realm = realm(&svc, &name).await?;
    Ok(Json(render(&*svc.admin.realm_keys(&realm).await?)))
}

#[utoipa::path(
    operation_id = "keys_rotate",
    post,
    path = "/admin/realms/{realm}/keys/rotate",
    tag = "admin",
    summary = "Rotate the realm's signing key (the old one stays published until its tokens expire)",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, body = KeysMetadata), crate::error::AdminErrors)
)]
pub async fn rotate(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
) -> Result<Json<KeysMetadata>, AdminError> {
    let realm = realm(&svc, &name).await?;
    Ok(Json(render(&*svc.admin.rotate_keys(&realm).await?)))
}
