//! Whether the database answers, for `/health/ready`, and which backend it
//! is. The one service that holds the whole store: pinging is not a
//! question any narrower trait can answer.

use std::sync::Arc;
use tessera_store::{Store, StoreError};

#[derive(Clone)]
pub struct Health {
    pub(crate) store: Arc<dyn Store>,
}

impl Health {
    /// One cheap round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }
}
