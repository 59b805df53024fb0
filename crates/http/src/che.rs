//! Eclipse Che's settings service (`GET /api/keycloak/settings`): the
//! endpoints of the default realm, with exactly the keys of Che's
//! KeycloakSettings. URLs use the legacy `/auth` prefix, as Che's do.

use crate::error::OAuthReject;
use crate::{AppState, HttpSettings};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use tessera_oauth::Services;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/keycloak/settings", get(settings))
}

async fn settings(
    State(svc): State<Services>,
    State(http): State<Arc<HttpSettings>>,
) -> Result<Json<Value>, OAuthReject> {
    let realm = svc.realms.realm(&http.default_realm).await?;
    let auth = format!("{}/auth", svc.config.public_url);
    let base = format!("{auth}/realms/{}", realm.name);
    Ok(Json(json!({
        "che.keycloak.token.endpoint": format!("{base}/protocol/openid-connect/token"),
        "che.keycloak.profile.endpoint": format!("{base}/account"),
        "che.keycloak.client_id": http.che_client_id,
        "che.keycloak.auth_server_url": auth,
        "che.keycloak.password.endpoint": format!("{base}/account/password"),
        "che.keycloak.logout.endpoint": format!("{base}/protocol/openid-connect/logout"),
        "che.keycloak.realm": realm.name,
    })))
}
