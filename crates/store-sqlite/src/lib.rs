//! The embedded default backend: one SQLite file in WAL mode. A small pool
//! serves reads; every write goes to one writer task that owns the single
//! write connection and commits concurrent writes together (group commit,
//! see `writer`). sqlx runs each connection on its own thread, so no query
//! blocks the async runtime.

pub mod backup;
#[cfg(test)]
mod tests;
mod writer;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use tessera_store::StoreError;

/// This release's schema: the migrations it applies, newest last.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct SqliteStore {
    read: SqlitePool,
    writer: writer::Writer,
}

impl SqliteStore {
    pub const BACKEND: &'static str = "sqlite";

    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_options(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens a database from a `sqlite://` URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unexpected(format!("bad SQLite URL: {e}")))?;
        Self::with_options(opts).await
    }

    async fn with_options(opts: SqliteConnectOptions) -> Result<Self, StoreError> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before any caller whose write it
            // holds hears back, so a token a client received survives power
            // loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let unexpected = |e: sqlx::Error| StoreError::Unexpected(e.to_string());
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(unexpected)?;
        tessera_store::schema::migrate(&MIGRATOR, &write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(unexpected)?;
        Ok(Self {
            read,
            writer: writer::Writer::start(write),
        })
    }

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Runs `op` on the write connection inside the next group commit and
    /// answers once that commit is durable. `op` runs in its own savepoint:
    /// if it fails, its changes are rolled back and the batch goes on.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
            ) -> futures::future::BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        self.writer.run(op).await
    }

    #[cfg(test)]
    fn writer(&self) -> &writer::Writer {
        &self.writer
    }
}

tessera_store::sql_store_impl!(SqliteStore, sqlx::Sqlite);
