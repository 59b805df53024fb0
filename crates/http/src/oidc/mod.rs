//! The per-realm OpenID Connect endpoints, in Keycloak's URL layout.

mod discovery;
mod token;
mod userinfo;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<AppState> {
    let oidc = "/realms/{realm}/protocol/openid-connect";
    Router::new()
        .route("/realms/{realm}", get(discovery::realm_info))
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(&format!("{oidc}/certs"), get(discovery::certs))
        .route(&format!("{oidc}/token"), post(token::token))
        .route(&format!("{oidc}/token/introspect"), post(token::introspect))
        .route(&format!("{oidc}/revoke"), post(token::revoke))
        .route(
            &format!("{oidc}/auth/device"),
            post(token::device_authorization),
        )
        .route(
            &format!("{oidc}/userinfo"),
            get(userinfo::userinfo_get).post(userinfo::userinfo_post),
        )
}
