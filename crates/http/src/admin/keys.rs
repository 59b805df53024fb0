//! `/admin/realms/{realm}/keys` (Keycloak's KeysMetadataRepresentation) and
//! `POST .../keys/rotate`, Tessera's rotation endpoint (Keycloak rotates by
//! adding a key provider; here one call does it).

use super::{realm, Admin};
use crate::error::AdminError;
use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tessera_core::model::KeyStatus;
use tessera_oauth::keyring::RealmKeys;
use tessera_oauth::Services;

fn render(keys: &RealmKeys) -> Value {
    let mut active = serde_json::Map::new();
    let list: Vec<Value> = keys
        .records
        .iter()
        .map(|r| {
            if r.status == KeyStatus::Active {
                active.insert(r.alg.as_str().to_string(), json!(r.kid));
            }
            json!({
                "kid": r.kid,
                "algorithm": r.alg.as_str(),
                "type": match r.alg.as_str() { "ES256" => "EC", "EdDSA" => "OKP", _ => "RSA" },
                "status": if r.status == KeyStatus::Active { "ACTIVE" } else { "PASSIVE" },
                "use": "SIG",
                "publicKey": STANDARD.encode(&r.public_key_der),
                "createdAt": r.created_at,
                "validTo": r.visible_until,
            })
        })
        .collect();
    json!({"active": active, "keys": list})
}

pub async fn list(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let realm = realm(&svc, &name).await?;
    Ok(Json(render(&*svc.admin.realm_keys(&realm).await?)))
}

pub async fn rotate(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let realm = realm(&svc, &name).await?;
    Ok(Json(render(&*svc.admin.rotate_keys(&realm).await?)))
}
