//! How a storage call failed: the cases callers act on, plus one bucket for
//! the rest. Defined here rather than in `tessera-store` (which re-exports
//! it) so that `OAuthError::server_error` can tell an outage from a bug
//! without every caller converting by hand.

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (name taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The database cannot be reached right now (connection refused or
    /// lost, pool exhausted, server shutting down, SQLite locked by another
    /// process): the same request may succeed later. Answered 503 with
    /// `Retry-After`, never 500.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: corrupt row, migration failure, a bug.
    #[error("storage failure: {0}")]
    Unexpected(String),
}

#[cfg(test)]
mod tests {
    use super::StoreError;
    use crate::error::RETRY_UNAVAILABLE_SECS;
    use crate::{OAuthError, OAuthErrorCode};

    #[test]
    fn a_database_that_is_down_is_503_with_retry_after_not_500() {
        let e = OAuthError::server_error(StoreError::Unavailable("pool timed out".into()));
        assert_eq!(e.code, OAuthErrorCode::TemporarilyUnavailable);
        assert_eq!(e.code.http_status(), 503);
        assert_eq!(e.code.as_str(), "temporarily_unavailable");
        assert_eq!(e.retry_after_secs, Some(RETRY_UNAVAILABLE_SECS));
        assert!(!e.description.contains("pool"), "detail stays private");

        let e = OAuthError::server_error(StoreError::Unexpected("bad row".into()));
        assert_eq!(e.code, OAuthErrorCode::ServerError);
        assert_eq!(e.code.http_status(), 500);
    }
}
