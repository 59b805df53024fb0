//! The multi-node backend: PostgreSQL through one connection pool. Several
//! stateless Tessera nodes can share it; row locks taken by the conditional
//! UPDATEs make refresh rotation safe across nodes.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
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
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unexpected(e.to_string()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unexpected(format!("migration failed: {e}")))?;
        Ok(Self { pool })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

tessera_store::sql_store_impl!(PgStore, sqlx::Postgres);

/// A throw-away database for one test: created on the server named by
/// `TESSERA_TEST_POSTGRES_URL`, dropped when the guard goes.
pub struct TestDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// `None` (with a note on stderr) when `TESSERA_TEST_POSTGRES_URL` is
    /// unset. Under `CI=true` a missing URL is a failure, so CI cannot pass
    /// while silently skipping the PostgreSQL suites.
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("TESSERA_TEST_POSTGRES_URL") else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but TESSERA_TEST_POSTGRES_URL is not set: PostgreSQL tests would be skipped");
            }
            eprintln!("skipped: set TESSERA_TEST_POSTGRES_URL to run the PostgreSQL tests");
            return None;
        };
        let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnectOptions::from_str(&admin_url)
            .expect("TESSERA_TEST_POSTGRES_URL is a valid URL")
            .connect()
            .await
            .expect("connect to TESSERA_TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let mut url = url_with_database(&admin_url, &name);
        if url.is_empty() {
            url = admin_url.clone();
        }
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort, on a fresh thread so it works from any context.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(opts) = PgConnectOptions::from_str(&admin_url) {
                    if let Ok(mut conn) = opts.connect().await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                }
            });
        })
        .join();
    }
}

/// Replaces the database path of a PostgreSQL URL, keeping its query string.
fn url_with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_is_swapped_in_urls() {
        assert_eq!(
            super::url_with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::url_with_database("postgres://127.0.0.1?sslmode=disable", "x"),
            "postgres://127.0.0.1/x?sslmode=disable"
        );
    }
}
