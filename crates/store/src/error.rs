//! Storage errors: the cases callers act on, plus one bucket for the rest.

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (name taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// Anything else: connection lost, corrupt row, migration failure.
    #[error("storage failure: {0}")]
    Unexpected(String),
}
