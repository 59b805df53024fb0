//! The RFC 6749 §5.2 error vocabulary, shared by every protocol endpoint.
//! Each error has a public description (sent to the client) and a private
//! debug string (logged, never sent), as in ory/fosite.

use crate::storage::StoreError;
use std::any::Any;
use std::fmt;

/// `Retry-After` (seconds) on a 503 for a database that is down: long
/// enough not to hammer a database that is restarting, short enough that
/// clients come back soon after it has.
pub const RETRY_UNAVAILABLE_SECS: u64 = 5;

/// Error codes from RFC 6749 §5.2, RFC 7009, RFC 8628 and RFC 6750, plus the
/// few non-OAuth outcomes the endpoints need (not found, too many requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    /// Wrong username or password: `invalid_grant`, but 401 as Keycloak
    /// answers (clients written for Keycloak key on that status).
    InvalidUserCredentials,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidToken,
    UnsupportedTokenType,
    AccessDenied,
    /// RFC 6749 §4.1.2.1: the response type is not `code`.
    UnsupportedResponseType,
    /// OIDC Core §3.1.2.6: `prompt=none` and nobody is signed in.
    LoginRequired,
    /// RFC 8628 §3.5: the user has not decided yet; keep polling.
    AuthorizationPending,
    /// RFC 8628 §3.5: polled faster than the interval; add 5 seconds.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
    /// The realm (or another path resource) does not exist: 404.
    NotFound,
    /// Throttled: 429 with a retry hint. The body still says `invalid_grant`
    /// so OAuth clients treat it as a failed grant.
    TooManyRequests,
    /// Request body over the size limit: 413.
    PayloadTooLarge,
    /// The server is too busy right now (RFC 6749 §4.1.2.1): 503.
    TemporarilyUnavailable,
    ServerError,
}

impl OAuthErrorCode {
    /// The `error` string sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::PayloadTooLarge => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant | Self::InvalidUserCredentials | Self::TooManyRequests => {
                "invalid_grant"
            }
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidToken => "invalid_token",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::LoginRequired => "login_required",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::NotFound => "not_found",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }

    /// The HTTP status RFC 6749 §5.2 (and RFC 6750 §3.1) prescribe.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken | Self::InvalidUserCredentials => 401,
            Self::NotFound => 404,
            Self::PayloadTooLarge => 413,
            Self::TooManyRequests => 429,
            Self::TemporarilyUnavailable => 503,
            Self::ServerError => 500,
            _ => 400,
        }
    }
}

/// One protocol error: code, public description, private debug detail and,
/// for throttling, how long the client should wait.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
    pub debug: Option<String>,
    pub retry_after_secs: Option<u64>,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            debug: None,
            retry_after_secs: None,
        }
    }
    /// Attaches detail for the log; it is never sent to the client.
    pub fn with_debug(mut self, debug: impl fmt::Display) -> Self {
        self.debug = Some(debug.to_string());
        self
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::UnauthorizedClient, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidScope, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidToken, d)
    }
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::NotFound, d)
    }
    /// An unexpected failure: the client sees a generic message, the log the
    /// cause. A `StoreError::Unavailable` passed here is no bug but an
    /// outage: it becomes `unavailable` (503 with `Retry-After`), so every
    /// `.map_err(OAuthError::server_error)` on a storage call answers a
    /// database that is down correctly without converting by hand.
    pub fn server_error(debug: impl fmt::Display + 'static) -> Self {
        if let Some(StoreError::Unavailable(detail)) = (&debug as &dyn Any).downcast_ref() {
            return Self::unavailable(detail);
        }
        Self::new(OAuthErrorCode::ServerError, "internal server error").with_debug(debug)
    }
    /// Something this request needs (the database) is down for now: 503
    /// `temporarily_unavailable` with `Retry-After`; the cause is logged only.
    pub fn unavailable(debug: impl fmt::Display) -> Self {
        Self {
            code: OAuthErrorCode::TemporarilyUnavailable,
            description: "The service is temporarily unavailable; retry shortly".into(),
            debug: Some(debug.to_string()),
            retry_after_secs: Some(RETRY_UNAVAILABLE_SECS),
        }
    }
    /// Too many requests of another kind than logins (device codes, user-code guesses).
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            code: OAuthErrorCode::TooManyRequests,
            description: format!("too many requests; retry in {retry_after_secs} seconds"),
            debug: None,
            retry_after_secs: Some(retry_after_secs),
        }
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self {
            code: OAuthErrorCode::TooManyRequests,
            description: format!(
                "too many failed login attempts; retry in {retry_after_secs} seconds"
            ),
            debug: None,
            retry_after_secs: Some(retry_after_secs),
        }
    }
}

impl fmt::Debug for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)?;
        if let Some(d) = &self.debug {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}
