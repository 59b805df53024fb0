//! Realm metadata: Keycloak's realm info (with `public_key`, which Codewind
//! reads), OIDC discovery and the JWKS.

use crate::error::{OAuthErrorBody, OAuthReject};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use tessera_core::scope::KNOWN_SCOPES;
use tessera_oauth::grants::TokenRequest;
use tessera_oauth::Services;

/// Keycloak's `PublishedRealmRepresentation`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RealmInfo {
    realm: String,
    /// The active RS256 (or the realm's) public key, DER, base64.
    #[serde(rename = "public_key")]
    public_key: String,
    token_service: String,
    account_service: String,
    tokens_not_before: i64,
}

#[utoipa::path(get, path = "/realms/{realm}", tag = "oidc",
    summary = "Keycloak's realm info (with the realm's public key)",
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, body = RealmInfo), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn realm_info(
    State(svc): State<Services>,
    Path(realm): Path<String>,
) -> Result<Json<RealmInfo>, OAuthReject> {
    let realm = svc.realms.realm(&realm).await?;
    let keys = svc.verifier.realm_keys(&realm).await?;
    let iss = svc.realms.issuer(&realm.name);
    Ok(Json(RealmInfo {
        token_service: format!("{iss}/protocol/openid-connect"),
        account_service: format!("{iss}/account"),
        realm: realm.name,
        public_key: keys.public_key_b64.clone(),
        tokens_not_before: 0,
    }))
}

#[utoipa::path(get, path = "/realms/{realm}/.well-known/openid-configuration", tag = "oidc",
    summary = "OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3)",
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, description = "The provider metadata", body = Object), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn openid_configuration(
    State(svc): State<Services>,
    Path(realm): Path<String>,
) -> Result<Json<Value>, OAuthReject> {
    metadata(&svc, &realm).await
}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server/realms/{realm}", tag = "oidc",
    summary = "OAuth 2.0 Authorization Server Metadata (RFC 8414, the well-known path inserted before the issuer's path)",
    description = "The same document as the realm's OpenID Provider Metadata; `issuer` is the realm's issuer, `<public_url>/realms/{realm}`.",
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, description = "The authorization server metadata", body = Object), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn oauth_authorization_server(
    State(svc): State<Services>,
    Path(realm): Path<String>,
) -> Result<Json<Value>, OAuthReject> {
    metadata(&svc, &realm).await
}

#[utoipa::path(get, path = "/.well-known/openid-configuration/realms/{realm}", tag = "oidc",
    summary = "OpenID Provider Metadata at the RFC 8414 path-inserted location",
    description = "Where clients that apply RFC 8414's path insertion to OpenID discovery look (the MCP authorization specification tries it); the same document as `/realms/{realm}/.well-known/openid-configuration`.",
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, description = "The provider metadata", body = Object), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn openid_configuration_path_inserted(
    State(svc): State<Services>,
    Path(realm): Path<String>,
) -> Result<Json<Value>, OAuthReject> {
    metadata(&svc, &realm).await
}

/// The realm's metadata, one document for OpenID discovery and RFC 8414.
async fn metadata(svc: &Services, realm: &str) -> Result<Json<Value>, OAuthReject> {
    let realm = svc.realms.realm(realm).await?;
    let iss = svc.realms.issuer(&realm.name);
    let oidc = format!("{iss}/protocol/openid-connect");
    // Public clients (PKCE, device code) send only their `client_id`; they
    // may not introspect.
    let secret_methods = ["client_secret_basic", "client_secret_post"];
    let public_too = ["client_secret_basic", "client_secret_post", "none"];
    Ok(Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{oidc}/auth"),
        "token_endpoint": format!("{oidc}/token"),
        "device_authorization_endpoint": format!("{oidc}/auth/device"),
        "introspection_endpoint": format!("{oidc}/token/introspect"),
        "userinfo_endpoint": format!("{oidc}/userinfo"),
        "end_session_endpoint": format!("{oidc}/logout"),
        "revocation_endpoint": format!("{oidc}/revoke"),
        "jwks_uri": format!("{oidc}/certs"),
        "grant_types_supported": TokenRequest::GRANT_TYPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [realm.signing_alg.as_str()],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": public_too,
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "revocation_endpoint_auth_methods_supported": public_too,
        "scopes_supported": KNOWN_SCOPES,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "sid", "azp",
            "preferred_username", "email", "email_verified", "name", "given_name", "family_name"],
    })))
}

#[utoipa::path(get, path = "/realms/{realm}/protocol/openid-connect/certs", tag = "oidc",
    summary = "The realm's JSON Web Key Set (RFC 7517), published keys included",
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, description = "`{\"keys\": [JWK...]}`", body = Object), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn certs(
    State(svc): State<Services>,
    Path(realm): Path<String>,
) -> Result<impl IntoResponse, OAuthReject> {
    let realm = svc.realms.realm(&realm).await?;
    let keys = svc.verifier.realm_keys(&realm).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        keys.jwks_json.to_string(),
    ))
}
