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

/// The metadata at the host's root (RFC 8414 §3.1: the well-known path goes
/// before the issuer's path, `<public_url path>/realms/{realm}`). Not under
/// the legacy `/auth` prefix, which is no issuer's path. With a `public_url`
/// that has a path (a proxy's prefix, say `/id`), the issuer is
/// `https://host/id/realms/{realm}` and its metadata is at
/// `/.well-known/oauth-authorization-server/id/realms/{realm}`, which the
/// proxy forwards unchanged; the paths without it are served as well.
pub fn well_known_router(public_url: &str) -> Router<AppState> {
    let prefix = url::Url::parse(public_url)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let mut prefixes = vec![String::new()];
    if !prefix.is_empty() {
        prefixes.push(prefix);
    }
    let mut router = Router::new();
    for prefix in prefixes {
        router = router
            .route(
                &format!("/.well-known/oauth-authorization-server{prefix}/realms/{{realm}}"),
                get(discovery::oauth_authorization_server),
            )
            .route(
                &format!("/.well-known/openid-configuration{prefix}/realms/{{realm}}"),
                get(discovery::openid_configuration_path_inserted),
            );
    }
    router
}

/// The OIDC endpoints' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    discovery::realm_info,
    discovery::openid_configuration,
    discovery::oauth_authorization_server,
    discovery::openid_configuration_path_inserted,
    discovery::certs,
    token::token,
    token::introspect,
    token::revoke,
    token::device_authorization,
    userinfo::userinfo_get,
    userinfo::userinfo_post,
    crate::pages::logout::logout_post,
))]
pub(crate) struct Api;

/// The form parameters of the token, introspection, revocation and device
/// authorization endpoints, for the OpenAPI document only. The handlers
/// take the form as one parameter map (`extract::Form`), which the token
/// service parses once into the grant's own typed request
/// (`tessera_oauth::grants::TokenRequest`), rejecting duplicates; each
/// endpoint reads the parameters its RFC names and ignores the rest.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenForm {
    /// Token endpoint: `authorization_code`, `password`, `client_credentials`,
    /// `refresh_token` or `urn:ietf:params:oauth:grant-type:device_code`.
    grant_type: Option<String>,
    /// Client authentication in the body (`client_secret_post`) or, for a
    /// public client, its id; else HTTP Basic.
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `authorization_code`.
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    /// `password`.
    username: Option<String>,
    password: Option<String>,
    /// `refresh_token`.
    refresh_token: Option<String>,
    /// Device code grant.
    device_code: Option<String>,
    scope: Option<String>,
    /// Introspection and revocation: the token.
    token: Option<String>,
    /// Revocation: `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
}

/// UserInfo's form (RFC 6750 §2.2), for the OpenAPI document only: the
/// handler reads `access_token` from the parameter map.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct AccessTokenForm {
    access_token: String,
}
