//! Form-posted protocol endpoints: token, introspection, revocation and
//! logout by refresh token. Each parses the form once (`Form`), resolves the
//! realm, authenticates the client and hands over to the token service.

use super::TokenForm;
use crate::error::{OAuthErrorBody, OAuthReject};
use crate::extract::{Form, Meta};
use crate::Metrics;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use tessera_core::{Client, OAuthError, Realm};
use tessera_oauth::browser::device::DeviceAuthorization;
use tessera_oauth::issue::TokenResponse;
use tessera_oauth::Services;

#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/token", tag = "oidc",
    summary = "Token endpoint (RFC 6749 §3.2): every grant",
    params(("realm" = String, Path, description = "Realm name")), security((), ("client_basic" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 400, description = "RFC 6749 §5.2 error, e.g. `invalid_request`, `invalid_grant`", body = OAuthErrorBody), (status = 401, description = "`invalid_client` (`WWW-Authenticate: Basic`)", body = OAuthErrorBody), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 429, description = "`too_many_requests`; `Retry-After` says when to retry", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`; `Retry-After` says when to retry", body = OAuthErrorBody)))]
pub async fn token(
    State(svc): State<Services>,
    State(metrics): State<Arc<Metrics>>,
    Path(realm): Path<String>,
    Meta(meta): Meta,
    form: Form,
) -> Result<Response, OAuthReject> {
    let realm = svc.realms.realm(&realm).await?;
    let (response, grant) = svc
        .tokens
        .token(&realm, form.authorization.as_deref(), &form.params, &meta)
        .await?;
    metrics.token_issued(grant);
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(response),
    )
        .into_response())
}

/// Resolves the realm and authenticates the calling client.
async fn realm_and_client(
    svc: &Services,
    realm: &str,
    form: &Form,
) -> Result<(Realm, Client), OAuthError> {
    let realm = svc.realms.realm(realm).await?;
    let client = svc
        .clients
        .calling_client(&realm, form.authorization.as_deref(), &form.params)
        .await?;
    Ok((realm, client))
}

#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/token/introspect", tag = "oidc",
    summary = "Token introspection (RFC 7662), for an authenticated client",
    params(("realm" = String, Path, description = "Realm name")), security((), ("client_basic" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`{\"active\": false}`, or the token's claims with `active`, `client_id`, `token_type` and `username`", body = Object), (status = 400, description = "RFC 6749 §5.2 error, e.g. `invalid_request`, `invalid_grant`", body = OAuthErrorBody), (status = 401, description = "`invalid_client` (`WWW-Authenticate: Basic`)", body = OAuthErrorBody), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 429, description = "`too_many_requests`; `Retry-After` says when to retry", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`; `Retry-After` says when to retry", body = OAuthErrorBody)))]
pub async fn introspect(
    State(svc): State<Services>,
    Path(realm): Path<String>,
    form: Form,
) -> Result<Response, OAuthReject> {
    let (realm, client) = realm_and_client(&svc, &realm, &form).await?;
    let token = form.params.require("token")?;
    let body = svc.tokens.introspect(&realm, &client, token).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/revoke", tag = "oidc",
    summary = "Token revocation (RFC 7009)",
    params(("realm" = String, Path, description = "Realm name")), security((), ("client_basic" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked, or the token was not valid"), (status = 400, description = "RFC 6749 §5.2 error, e.g. `invalid_request`, `invalid_grant`", body = OAuthErrorBody), (status = 401, description = "`invalid_client` (`WWW-Authenticate: Basic`)", body = OAuthErrorBody), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 429, description = "`too_many_requests`; `Retry-After` says when to retry", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`; `Retry-After` says when to retry", body = OAuthErrorBody)))]
pub async fn revoke(
    State(svc): State<Services>,
    Path(realm): Path<String>,
    form: Form,
) -> Result<StatusCode, OAuthReject> {
    let (realm, client) = realm_and_client(&svc, &realm, &form).await?;
    if let Some(hint) = form.params.get("token_type_hint") {
        if !matches!(hint, "access_token" | "refresh_token") {
            return Err(OAuthError::new(
                tessera_core::OAuthErrorCode::UnsupportedTokenType,
                format!("unsupported token_type_hint: {hint}"),
            )
            .into());
        }
    }
    let token = form.params.require("token")?;
    svc.tokens.revoke(&realm, &client, token).await?;
    Ok(StatusCode::OK)
}

/// RFC 8628 §3.1: a code pair for a device.
#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/auth/device", tag = "oidc",
    summary = "Device authorization (RFC 8628 §3.1)",
    params(("realm" = String, Path, description = "Realm name")), security((), ("client_basic" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = DeviceAuthorization), (status = 400, description = "RFC 6749 §5.2 error, e.g. `invalid_request`, `invalid_grant`", body = OAuthErrorBody), (status = 401, description = "`invalid_client` (`WWW-Authenticate: Basic`)", body = OAuthErrorBody), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 429, description = "`too_many_requests`; `Retry-After` says when to retry", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`; `Retry-After` says when to retry", body = OAuthErrorBody)))]
pub async fn device_authorization(
    State(svc): State<Services>,
    Path(realm): Path<String>,
    Meta(meta): Meta,
    form: Form,
) -> Result<Response, OAuthReject> {
    let realm = svc.realms.realm(&realm).await?;
    let body = svc
        .browser
        .device_authorization(
            &realm,
            form.authorization.as_deref(),
            &form.params,
            meta.ip.as_deref(),
        )
        .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
