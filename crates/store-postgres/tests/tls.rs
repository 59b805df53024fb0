//! TLS to PostgreSQL as the database URL says (`sslmode`, `sslrootcert`),
//! checked from the server's side: `pg_stat_ssl` of the store's connections.
//! The server here has TLS on with a self-signed certificate for
//! `localhost`, whose file it names in `ssl_cert_file`. The whole PostgreSQL
//! suite also runs over `sslmode=require` in CI (`.ci/run`).

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use std::str::FromStr;
use tessera_store_postgres::{PgStore, TestDatabase};

/// Whether every connection to database `name` named `app` uses TLS, and
/// how many there are.
async fn tls_of(admin_url: &str, name: &str, app: &str) -> (bool, i64) {
    let mut conn = PgConnectOptions::from_str(admin_url)
        .expect("url")
        .connect()
        .await
        .expect("admin connection");
    let row = sqlx::query(
        "SELECT coalesce(bool_and(s.ssl), false) AS ssl, count(*) AS n
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = $1 AND a.application_name = $2",
    )
    .bind(name)
    .bind(app)
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_ssl");
    let out = (row.get("ssl"), row.get("n"));
    conn.close().await.ok();
    out
}

/// `url` with `params` and `application_name=app`, to tell its
/// connections apart from earlier cases' (a dropped pool closes lazily).
fn with_params(url: &str, params: &str, app: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}&application_name={app}")
}

/// The URL without any TLS parameters CI may have put on it, on `host`.
fn on_host(url: &str, host: &str) -> String {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    let mut parsed = url::Url::parse(base).expect("url");
    parsed.set_host(Some(host)).expect("host");
    parsed.to_string()
}

#[tokio::test]
async fn the_store_speaks_tls_as_the_url_says() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let admin = std::env::var("TESSERA_TEST_POSTGRES_URL").expect("set");
    let plain = on_host(&db.url, "127.0.0.1");

    let _plain = PgStore::connect(&with_params(&plain, "sslmode=disable", "plain"))
        .await
        .expect("plain");
    let (tls, n) = tls_of(&admin, &db.name, "plain").await;
    assert!(n > 0 && !tls, "sslmode=disable");

    let _required = PgStore::connect(&with_params(&plain, "sslmode=require", "required"))
        .await
        .expect("sslmode=require");
    let (tls, n) = tls_of(&admin, &db.name, "required").await;
    assert!(n > 0 && tls, "sslmode=require: every connection encrypted");

    // The server's own certificate as the root: verify-full holds for the
    // name on it (localhost) and fails for another (127.0.0.1), as libpq.
    let mut conn = PgConnectOptions::from_str(&admin)
        .expect("url")
        .connect()
        .await
        .expect("admin connection");
    let cert: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&mut conn)
        .await
        .expect("ssl_cert_file");
    conn.close().await.ok();
    if std::fs::metadata(&cert).is_err() {
        eprintln!("skipped the verify-* cases: the server's certificate {cert} is not readable");
        return;
    }
    let root = format!("sslrootcert={cert}");
    let _full = PgStore::connect(&with_params(
        &on_host(&db.url, "localhost"),
        &format!("sslmode=verify-full&{root}"),
        "full",
    ))
    .await
    .expect("verify-full for the certificate's name");
    let (tls, n) = tls_of(&admin, &db.name, "full").await;
    assert!(n > 0 && tls, "verify-full");
    let refused = PgStore::connect(&with_params(
        &plain,
        &format!("sslmode=verify-full&{root}"),
        "wrong-name",
    ))
    .await;
    assert!(
        refused.is_err(),
        "verify-full refuses a certificate issued for another name"
    );
    // verify-ca should not compare the name (libpq's rule), but sqlx 0.8.6
    // only forgives rustls's older `NotValidForName` error, and rustls 0.23.46
    // reports `NotValidForNameContext`: through sqlx, verify-ca checks the
    // name too (stricter, never weaker; docs/operations.md says so).
    let _ca = PgStore::connect(&with_params(
        &on_host(&db.url, "localhost"),
        &format!("sslmode=verify-ca&{root}"),
        "ca",
    ))
    .await
    .expect("verify-ca checks the chain");
    let (tls, n) = tls_of(&admin, &db.name, "ca").await;
    assert!(n > 0 && tls, "verify-ca");
}
