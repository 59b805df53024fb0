//! The multi-node backend: PostgreSQL through one connection pool. Several
//! stateless Tessera nodes can share it; row locks taken by the conditional
//! UPDATEs make refresh rotation safe across nodes.

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use tessera_store::StoreError;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub const BACKEND: &'static str = "postgres";

    /// Connects to `url` and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unexpected(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3)) // then 503: see docs/operations.md
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unexpected(e.to_string()))?;
        // A schema newer than this binary is refused with a clear message.
        tessera_store::schema::migrate(&sqlx::migrate!("./migrations"), &pool).await?;
        Ok(Self { pool })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `op` on a pooled connection, in a task of its own: a request
    /// that is dropped half-way (its client hung up) must not cancel a write
    /// between `BEGIN` and `COMMIT`, which could hand the connection back to
    /// the pool inside a transaction that holds its row locks for good.
    /// Statements autocommit; a write of several statements opens its own
    /// transaction on the connection.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool
                .acquire()
                .await
                .map_err(tessera_store::sql::map_db_error)?;
            op(&mut conn).await
        })
        .await
        .map_err(|e| StoreError::Unexpected(format!("a write failed: {e}")))?
    }
}

tessera_store::sql_store_impl!(PgStore, sqlx::Postgres);

#[cfg(any(test, feature = "test-support"))]
mod test_support;
#[cfg(any(test, feature = "test-support"))]
pub use test_support::TestDatabase;

#[cfg(test)]
mod tests {
    #[test]
    fn database_is_swapped_in_urls() {
        assert_eq!(
            super::test_support::url_with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::test_support::url_with_database("postgres://127.0.0.1?sslmode=disable", "x"),
            "postgres://127.0.0.1/x?sslmode=disable"
        );
    }
}
