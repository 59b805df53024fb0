//! Session revocations between the nodes of a PostgreSQL deployment, for
//! their caches of live sessions (`tessera_oauth::live_sessions`).
//!
//! Each node sends the ids of the sessions it ends (`SessionRevoked`) as a
//! NOTIFY on `tessera_session_revoked`, and LISTENs there: a node that hears
//! of a session forgets its live verdict on it (`Sessions::ended_elsewhere`),
//! usually a few milliseconds after the revoking node's commit. Whatever is
//! lost on the way is covered by `session_cache_ms`, the stated bound: a
//! node that fell behind sends `*` (everyone forgets everything), and a
//! listener that lost its connection forgets everything once it listens
//! again. The event channel's socket adapter uses the same database; its
//! messages are its own.

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::time::Duration;
use tessera_oauth::events::ServerEvent;
use tessera_oauth::Sessions;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// The NOTIFY channel.
pub const CHANNEL: &str = "tessera_session_revoked";

/// Every session: the sender lost track of what it ended.
const ALL: &str = "*";

/// Session ids per NOTIFY (payloads must stay under 8000 bytes).
const BATCH: usize = 100;

/// Starts relaying this node's revocations to the others and theirs to this
/// node's cache. Fails if the database cannot be reached now; later losses
/// are retried in the background.
pub async fn relay(sessions: Sessions, url: &str) -> anyhow::Result<()> {
    let listener = listen(url).await?;
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    tokio::spawn(send(sessions.clone(), pool));
    tokio::spawn(receive(sessions, listener, url.to_string()));
    Ok(())
}

async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// This node's revocations, a batch per NOTIFY.
async fn send(sessions: Sessions, pool: PgPool) {
    let mut events = sessions.subscribe();
    loop {
        let mut ids = Vec::new();
        match events.recv().await {
            Ok(ServerEvent::SessionRevoked { session_id, .. }) => ids.push(session_id),
            Ok(_) => continue,
            Err(RecvError::Lagged(_)) => ids.push(ALL.to_string()),
            Err(RecvError::Closed) => return,
        }
        while ids.len() < BATCH {
            match events.try_recv() {
                Ok(ServerEvent::SessionRevoked { session_id, .. }) => ids.push(session_id),
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => ids.push(ALL.to_string()),
                Err(_) => break,
            }
        }
        let payload = if ids.iter().any(|id| id == ALL) {
            ALL.to_string()
        } else {
            ids.join(",")
        };
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&payload)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not tell other nodes of revoked sessions; they refuse them within session_cache_ms");
        }
    }
}

/// Other nodes' revocations (and this node's own, which cost a lookup).
async fn receive(sessions: Sessions, mut listener: PgListener, url: String) {
    loop {
        let lost = match listener.try_recv().await {
            Ok(Some(n)) => {
                forget(&sessions, n.payload());
                continue;
            }
            Ok(None) => "connection lost".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(reason = %lost, "revocation listener interrupted; reconnecting");
        // Notices sent meanwhile are lost: listen again, then forget every
        // live verdict (a revocation may be among the lost ones).
        loop {
            sessions.forget_live_sessions();
            match listen(&url).await {
                Ok(l) => {
                    listener = l;
                    sessions.forget_live_sessions();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revocation listener cannot reconnect");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

fn forget(sessions: &Sessions, payload: &str) {
    if payload == ALL {
        sessions.forget_live_sessions();
        return;
    }
    for id in payload.split(',').filter(|id| !id.is_empty()) {
        sessions.ended_elsewhere(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tessera_oauth::{OAuthConfig, Params, Services};

    /// Two nodes on one PostgreSQL database, each trusting a live session
    /// for a minute: only the relay can make node B refuse a session that
    /// node A ended within the time this test waits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_ended_on_one_node_is_forgotten_on_the_other() {
        let Some(db) = tessera_store_postgres::TestDatabase::create().await else {
            return;
        };
        let store = Arc::new(
            tessera_store_postgres::PgStore::connect(&db.url)
                .await
                .expect("postgres"),
        );
        let mut config = OAuthConfig::new("http://t");
        config.session_cache_ms = 60_000;
        config.password.memory_kib = 1024;
        config.password.iterations = 1;
        let master = tessera_keys::MasterKey::generate();
        let node_a = Services::new(store.clone(), master.clone(), config.clone());
        let node_b = Services::new(store, master, config);
        node_a
            .admin
            .bootstrap(Some("pw-0123456789".into()), "apps")
            .await
            .expect("bootstrap");
        relay(node_a.sessions.clone(), &db.url)
            .await
            .expect("relay a");
        relay(node_b.sessions.clone(), &db.url)
            .await
            .expect("relay b");

        let realm = node_a.realms.realm("master").await.expect("realm");
        let params = Params::parse(
            b"grant_type=password&client_id=admin-cli&username=admin&password=pw-0123456789",
        )
        .expect("form");
        let (res, _) = node_a
            .tokens
            .token(&realm, None, &params, &Default::default())
            .await
            .expect("token");
        let (claims, _) = node_b
            .verifier
            .verify_live_access_token(&realm, &res.access_token)
            .await
            .expect("live on B (and kept for a minute)");
        let sid = claims.sid.expect("sid");
        assert!(node_a.sessions.end_session(&sid).await.expect("end"));
        assert!(node_a
            .verifier
            .verify_live_access_token(&realm, &res.access_token)
            .await
            .is_err());
        for _ in 0..100 {
            let b = node_b
                .verifier
                .verify_live_access_token(&realm, &res.access_token)
                .await;
            if b.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node B still accepts the session 5 s after node A ended it");
    }
}
