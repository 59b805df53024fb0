//! The shared storage conformance suite against a fresh SQLite file per test.

use std::sync::Arc;
use tessera_store::Store;
use tessera_store_sqlite::SqliteStore;

async fn make() -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .expect("open sqlite");
    Some((Arc::new(store), dir))
}

tessera_store::conformance_tests!(make);

/// The embedded database runs in WAL mode (a persistent property of the
/// file), checked from a separate connection as any tool would see it.
#[tokio::test]
async fn database_file_is_in_wal_mode() {
    use sqlx::{Connection, Row};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tessera.db");
    let _store = SqliteStore::open(&path).await.expect("open sqlite");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("second connection");
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("pragma")
        .get(0);
    assert_eq!(mode, "wal");
}
