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
