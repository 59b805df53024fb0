//! Test support (feature `test-support`): a throw-away PostgreSQL database
//! per test, on the server named by `TESSERA_TEST_POSTGRES_URL`.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;

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
pub(crate) fn url_with_database(url: &str, db: &str) -> String {
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
