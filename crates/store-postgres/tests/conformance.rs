//! The shared storage conformance suite against a fresh PostgreSQL database
//! per test (skipped, saying so, without `TESSERA_TEST_POSTGRES_URL`).

use std::sync::Arc;
use tessera_store::Store;
use tessera_store_postgres::{PgStore, TestDatabase};

async fn make() -> Option<(Arc<dyn Store>, TestDatabase)> {
    let db = TestDatabase::create().await?;
    let store = PgStore::connect(&db.url)
        .await
        .expect("connect to test database");
    Some((Arc::new(store), db))
}

tessera_store::conformance_tests!(make);
