//! Garbage collection: expired refresh tokens, sessions, consent challenges,
//! codes and browser sessions go in small batches, each its own short
//! statement, with a pause between batches so token issuance never waits long
//! for the write lock.

use std::time::Duration;
use tessera_store::{Purged, Store, StoreError};

#[derive(Clone, Copy, Debug)]
pub struct GcConfig {
    /// Rows per table per batch.
    pub batch: i64,
    /// Pause between batches.
    pub pause: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            pause: Duration::from_millis(20),
        }
    }
}

/// Runs batches until one comes back short; returns the totals.
pub async fn collect_garbage(
    store: &dyn Store,
    before_ms: i64,
    config: GcConfig,
) -> Result<Purged, StoreError> {
    let batch = config.batch.max(1);
    let mut total = Purged::default();
    loop {
        let done = store.purge_expired(before_ms, batch).await?;
        total.add(&done);
        let more = done.largest() >= batch as u64;
        if !more {
            return Ok(total);
        }
        tokio::time::sleep(config.pause).await;
    }
}
