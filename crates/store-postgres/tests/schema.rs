//! Upgrades: a database with a migration this binary does not have (written
//! by a newer release) is refused at connect with a message that says what
//! to do, and left untouched (skipped without `TESSERA_TEST_POSTGRES_URL`).

use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use tessera_store_postgres::{PgStore, TestDatabase};

#[tokio::test]
async fn a_newer_schema_is_refused_at_connect() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    drop(
        PgStore::connect(&db.url)
            .await
            .expect("first connect migrates"),
    );
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(&db.url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, '\\x00'::bytea, 0)",
    )
    .execute(&mut conn)
    .await
    .expect("fake migration");

    let err = match PgStore::connect(&db.url).await {
        Ok(_) => panic!("a newer schema must be refused"),
        Err(e) => e.to_string(),
    };
    let known = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations")
        .count();
    assert!(
        err.ends_with(&format!(
            "database schema version 9999 is newer than this tessera knows ({known}); upgrade tessera"
        )),
        "{err}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(rows as usize, known + 1, "nothing applied or removed");
    conn.close().await.ok();
}
