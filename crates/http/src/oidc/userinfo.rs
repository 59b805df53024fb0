//! OIDC userinfo: the bearer token from the `Authorization` header, or (POST
//! only) the `access_token` form parameter (RFC 6750 §2.2).

use crate::error::OAuthReject;
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

pub async fn userinfo_get(
    State(svc): State<Services>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthReject> {
    let token = bearer(&headers).ok_or_else(missing)?;
    let realm = svc.realms.realm(&realm).await?;
    Ok(Json(svc.tokens.userinfo(&realm, token).await?))
}

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
