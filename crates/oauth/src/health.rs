//! Whether this node should get traffic, for `/health/ready`: the database
//! answers, and the node is not draining for shutdown. The one service that
//! holds the whole store: pinging is not a question any narrower trait can
//! answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera_store::{Store, StoreError};

/// How long a readiness ping may take. Readiness must answer within a
/// second in every state (a load balancer's probe times out), while a
/// database that is down makes a ping wait for the pool's acquire timeout:
/// past this bound the database counts as unavailable.
pub const PING_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Clone)]
pub struct Health {
    store: Arc<dyn Store>,
    draining: Arc<AtomicBool>,
}

impl Health {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// One cheap round trip to the database, given up after `PING_TIMEOUT`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                PING_TIMEOUT.as_millis()
            ))),
        }
    }

    /// From now on this node reports not ready, so load balancers stop
    /// sending it new work; it still serves what reaches it. Called once,
    /// on the first shutdown signal; there is no way back.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }
}
