//! Eclipse Che's settings service (`GET /api/keycloak/settings`): the
//! endpoints of the default realm, with exactly the keys of Che's
//! KeycloakSettings. URLs use the legacy `/auth` prefix, as Che's do.

use crate::error::{OAuthErrorBody, OAuthReject};
use crate::{AppState, HttpSettings};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use tessera_oauth::Services;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/keycloak/settings", get(settings))
}

/// Che's `KeycloakSettings`: the keys are Che's property names.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeycloakSettings {
    #[serde(rename = "che.keycloak.token.endpoint")]
    token_endpoint: String,
    #[serde(rename = "che.keycloak.profile.endpoint")]
    profile_endpoint: String,
    #[serde(rename = "che.keycloak.client_id")]
    client_id: String,
    #[serde(rename = "che.keycloak.auth_server_url")]
    auth_server_url: String,
    #[serde(rename = "che.keycloak.password.endpoint")]
    password_endpoint: String,
    #[serde(rename = "che.keycloak.logout.endpoint")]
    logout_endpoint: String,
    #[serde(rename = "che.keycloak.realm")]
    realm: String,
}

/// Che's settings' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(settings))]
pub(crate) struct Api;

#[utoipa::path(get, path = "/api/keycloak/settings", tag = "che",
    summary = "Che's Keycloak settings: the default realm's endpoints",
    responses(
        (status = 200, body = KeycloakSettings),
        (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
async fn settings(
    State(svc): State<Services>,
    State(http): State<Arc<HttpSettings>>,
) -> Result<Json<KeycloakSettings>, OAuthReject> {
    let realm = svc.realms.realm(&http.default_realm).await?;
    let auth = format!("{}/auth", svc.config.public_url);
    let base = format!("{auth}/realms/{}", realm.name);
    Ok(Json(KeycloakSettings {
        token_endpoint: format!("{base}/protocol/openid-connect/token"),
        profile_endpoint: format!("{base}/account"),
        client_id: http.che_client_id.clone(),
        auth_server_url: auth,
        password_endpoint: format!("{base}/account/password"),
        logout_endpoint: format!("{base}/protocol/openid-connect/logout"),
        realm: realm.name,
    }))
}
