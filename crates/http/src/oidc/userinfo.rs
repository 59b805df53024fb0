//! OIDC userinfo: the bearer token from the `Authorization` header, or (POST
//! only) the `access_token` form parameter (RFC 6750 §2.2).

use super::AccessTokenForm;
use crate::error::{OAuthErrorBody, OAuthReject};
use crate::extract::{bearer, Form};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;
use tessera_core::OAuthError;
use tessera_oauth::Services;

fn missing() -> OAuthError {
    OAuthError::invalid_token("Token not provided")
}

#[utoipa::path(get, path = "/realms/{realm}/protocol/openid-connect/userinfo", tag = "oidc",
    summary = "OIDC UserInfo (Core §5.3)",
    params(("realm" = String, Path, description = "Realm name")), security(("bearer" = [])),
    responses((status = 200, description = "The user's claims, as the token's scope allows", body = Object), (status = 401, description = "`invalid_token` (`WWW-Authenticate: Bearer`)", body = OAuthErrorBody), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn userinfo_get(
    State(svc): State<Services>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthReject> {
    let token = bearer(&headers).ok_or_else(missing)?;
    let realm = svc.realms.realm(&realm).await?;
    Ok(Json(svc.tokens.userinfo(&realm, token).await?))
}

#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/userinfo", tag = "oidc",
    summary = "OIDC UserInfo; the token in the header or as the `access_token` form parameter (RFC 6750 §2.2)",
    params(("realm" = String, Path, description = "Realm name")), security(("bearer" = []), ()),
    request_body(content = AccessTokenForm, content_type = "application/x-www-form-urlencoded", description = "Only when no `Authorization` header is sent"),
    responses((status = 200, description = "The user's claims, as the token's scope allows", body = Object), (status = 401, description = "`invalid_token` (`WWW-Authenticate: Bearer`)", body = OAuthErrorBody), (status = 404, description = "No such realm", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn userinfo_post(
    State(svc): State<Services>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    form: Result<Form, OAuthReject>,
) -> Result<Json<Value>, OAuthReject> {
    let token = match (bearer(&headers), &form) {
        (Some(t), _) => t.to_string(),
        (None, Ok(f)) => f
            .params
            .get("access_token")
            .ok_or_else(missing)?
            .to_string(),
        (None, Err(_)) => return Err(missing().into()),
    };
    let realm = svc.realms.realm(&realm).await?;
    Ok(Json(svc.tokens.userinfo(&realm, &token).await?))
}
