//! Domain errors turned into HTTP responses: RFC 6749 §5.2 JSON on protocol
//! endpoints, Keycloak's `{"errorMessage"}` on the Admin API. Internal detail
//! is logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tessera_core::{OAuthError, OAuthErrorCode};
use tessera_oauth::data::{Failure, StoreError};

/// The body of every OAuth protocol error (RFC 6749 §5.2), as sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// The RFC 6749 error code, e.g. `invalid_grant`, `invalid_client`, `invalid_token`.
    #[schema(example = "invalid_grant")]
    pub error: &'static str,
    /// Human-readable; never internal detail.
    pub error_description: String,
}

/// The body of an Admin API error other than 401/403: Keycloak's
/// `ErrorRepresentation`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminErrorBody {
    #[schema(example = "Could not find realm")]
    pub error_message: String,
}

/// The body of an Admin API 401 or 403, as Keycloak sends it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminDeniedBody {
    #[schema(example = "HTTP 401 Unauthorized")]
    pub error: &'static str,
}

/// The Admin API's error responses, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
pub enum AdminErrors {
    /// The request is invalid (`errorMessage` says why).
    #[response(status = 400)]
    BadRequest(AdminErrorBody),
    /// No or an invalid bearer token (`WWW-Authenticate: Bearer realm="master"`).
    #[response(status = 401)]
    Unauthorized(AdminDeniedBody),
    /// The token's user is not an administrator.
    #[response(status = 403)]
    Forbidden(AdminDeniedBody),
    /// The realm, client, user or session does not exist.
    #[response(status = 404)]
    NotFound(AdminErrorBody),
    /// A name is already taken.
    #[response(status = 409)]
    Conflict(AdminErrorBody),
    /// The database is unavailable; `Retry-After` says when to retry.
    #[response(status = 503)]
    Unavailable(AdminErrorBody),
}

/// An OAuth protocol error response.
#[derive(Debug)]
pub struct OAuthReject(pub OAuthError);

impl From<OAuthError> for OAuthReject {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OAuthReject {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.code == OAuthErrorCode::ServerError {
            tracing::error!(error = ?e, "request failed");
        } else if e.code == OAuthErrorCode::TemporarilyUnavailable {
            tracing::warn!(error = ?e, "request refused: temporarily unavailable");
        } else {
            tracing::debug!(error = ?e, "request rejected");
        }
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = OAuthErrorBody {
            error: e.code.as_str(),
            error_description: e.description.clone(),
        };
        let mut res = (status, Json(body)).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match e.code {
            OAuthErrorCode::InvalidToken => {
                let v = format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    e.description.replace('"', "'")
                );
                if let Ok(v) = HeaderValue::from_str(&v) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            OAuthErrorCode::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"tessera\""),
                );
            }
            OAuthErrorCode::TooManyRequests | OAuthErrorCode::TemporarilyUnavailable => {
                if let Some(secs) = e.retry_after_secs {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
            }
            _ => {}
        }
        res
    }
}

/// Every 503 (a database that is down, a busy password hasher, a node that
/// is draining) tells the client when to come back, whichever handler or
/// error type produced it.
pub(crate) async fn retry_after_on_503(mut res: Response) -> Response {
    if res.status() == StatusCode::SERVICE_UNAVAILABLE
        && !res.headers().contains_key(header::RETRY_AFTER)
    {
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(tessera_core::error::RETRY_UNAVAILABLE_SECS),
        );
    }
    res
}

/// An Admin API error, as Keycloak's `ErrorRepresentation`.
#[derive(Debug)]
pub struct AdminError {
    pub status: StatusCode,
    pub message: String,
}

impl AdminError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("Could not find {what}"))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "admin request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }
    /// The database is down for now: 503 (`Retry-After` is added by `app`).
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "admin request: database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable; retry shortly",
        )
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::new(StatusCode::NOT_FOUND, "Not found"),
            StoreError::Conflict(_) => {
                Self::conflict("Conflict detected: the name is already taken")
            }
            StoreError::Unavailable(d) => Self::unavailable(d),
            StoreError::Unexpected(d) => Self::internal(d),
        }
    }
}

impl From<OAuthError> for AdminError {
    fn from(e: OAuthError) -> Self {
        match e.code {
            OAuthErrorCode::NotFound => Self::new(StatusCode::NOT_FOUND, e.description),
            OAuthErrorCode::ServerError => Self::internal(format!("{e:?}")),
            OAuthErrorCode::TemporarilyUnavailable => Self::unavailable(format!("{e:?}")),
            _ => Self::bad_request(e.description),
        }
    }
}

impl From<Failure> for AdminError {
    fn from(e: Failure) -> Self {
        match e {
            Failure::Database(e) => e.into(),
            Failure::Service(e) => e.into(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut res = match self.status {
            StatusCode::UNAUTHORIZED => Json(AdminDeniedBody {
                error: "HTTP 401 Unauthorized",
            })
            .into_response(),
            StatusCode::FORBIDDEN => Json(AdminDeniedBody {
                error: "HTTP 403 Forbidden",
            })
            .into_response(),
            _ => Json(AdminErrorBody {
                error_message: self.message,
            })
            .into_response(),
        };
        *res.status_mut() = self.status;
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"master\""),
            );
        }
        res
    }
}
