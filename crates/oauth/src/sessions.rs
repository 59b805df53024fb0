//! Ending sessions and saying so: every path that ends a session (logout,
//! revocation, an administrator, refresh-token reuse, a disabled client)
//! comes through here, which publishes `SessionRevoked` after the commit so
//! the event channel cuts the session's sockets on every node, and forgets
//! it in this node's cache of live sessions (`live_sessions.rs`) before it
//! answers, so this node refuses the session at once.

use crate::events::{RealmEvent, ServerEvent, ServerEvents};
use crate::live_sessions::LiveSessions;
use crate::OAuthConfig;
use std::sync::Arc;
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, Realm};
use tessera_store::SessionStore;

#[derive(Clone)]
pub struct Sessions {
    pub(crate) session_db: Arc<dyn SessionStore>,
    pub(crate) events: Arc<ServerEvents>,
    pub(crate) config: Arc<OAuthConfig>,
    pub(crate) live: Arc<LiveSessions>,
}

impl Sessions {
    /// Server events, for the event channel to forward.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ServerEvent> {
        self.events.subscribe()
    }

    /// Server events with the realm each belongs to, for the event channel.
    pub fn subscribe_in_realms(&self) -> tokio::sync::broadcast::Receiver<RealmEvent> {
        self.events.subscribe_in_realms()
    }

    /// Whether the session exists and is active (not ended, not expired),
    /// asked of the database (never of the cache: sockets re-check here).
    pub async fn is_active(&self, session_id: &str) -> Result<bool, OAuthError> {
        Ok(self
            .session_db
            .session(session_id)
            .await
            .map_err(OAuthError::server_error)?
            .is_some_and(|s| s.is_active(now_ms())))
    }

    /// Revokes one session and tells subscribers. Returns whether it was live.
    pub async fn end_session(&self, session_id: &str) -> Result<bool, OAuthError> {
        let ended = self
            .session_db
            .revoke_session(session_id, now_ms())
            .await
            .map_err(OAuthError::server_error)?;
        match &ended {
            Some(owner) => self.announce_ended(
                &owner.realm_id,
                &owner.user_id,
                vec![session_id.to_string()],
            ),
            // Already ended (perhaps by another node whose notice has not
            // arrived): this node must not keep accepting it either.
            None => self.live.forget([session_id]),
        }
        Ok(ended.is_some())
    }

    /// A spent refresh token came back. Within the grace window that is a
    /// client racing itself; after it, two holders (one stole it), so the
    /// session ends. Returns whether it was past the grace window.
    pub async fn refresh_token_reused(
        &self,
        session_id: &str,
        rotated_at: i64,
    ) -> Result<bool, OAuthError> {
        if now_ms() - rotated_at <= self.config.refresh_reuse_grace_ms {
            return Ok(false);
        }
        tracing::warn!(session = %session_id, "refresh token reuse detected; session revoked");
        self.end_session(session_id).await?;
        Ok(true)
    }

    /// Revokes every session of a user; returns how many ended.
    pub async fn end_user_sessions(
        &self,
        realm: &Realm,
        user_id: &str,
    ) -> Result<usize, OAuthError> {
        let ended = self
            .session_db
            .revoke_user_sessions(&realm.id, user_id, now_ms())
            .await
            .map_err(OAuthError::server_error)?;
        let n = ended.len();
        self.announce_ended(&realm.id, user_id, ended);
        Ok(n)
    }

    /// Revokes every session of a client (it was disabled or deleted) and
    /// tells subscribers; returns how many ended.
    pub async fn end_client_sessions(&self, client: &Client) -> Result<usize, OAuthError> {
        let ended = self
            .session_db
            .revoke_client_sessions(&client.realm_id, &client.id, now_ms())
            .await
            .map_err(OAuthError::server_error)?;
        let n = ended.len();
        for (user_id, session_id) in ended {
            self.announce_ended(&client.realm_id, &user_id, vec![session_id]);
        }
        if n > 0 {
            tracing::info!(client = %client.client_id, sessions = n, "client's sessions ended");
        }
        Ok(n)
    }

    /// Publishes `SessionRevoked` for sessions of `user_id` (of the realm
    /// `realm_id`) the store has just revoked, after forgetting them in this
    /// node's cache of live sessions. Call it after the commit: a lookup that
    /// read the session before then does not keep it.
    pub fn announce_ended(&self, realm_id: &str, user_id: &str, session_ids: Vec<String>) {
        self.live.forget(session_ids.iter().map(String::as_str));
        for session_id in session_ids {
            self.events.publish(
                realm_id,
                ServerEvent::SessionRevoked {
                    user_id: user_id.to_string(),
                    session_id,
                },
            );
        }
    }

    /// Another node revoked this session (its `SessionRevoked` reached this
    /// node): forget any live verdict held here. Nothing is published.
    pub fn ended_elsewhere(&self, session_id: &str) {
        self.live.forget([session_id]);
    }

    /// Revocations by other nodes may have been missed (their relay
    /// reconnected, or fell behind): forget every live verdict held here.
    pub fn forget_live_sessions(&self) {
        self.live.forget_all();
    }

    /// Sends `event` with `data` to every socket of the user (of the realm
    /// `realm_id`), on any node (the me-channel).
    pub fn publish_to_user(
        &self,
        realm_id: &str,
        user_id: &str,
        event: &str,
        data: serde_json::Value,
    ) {
        self.events.publish(
            realm_id,
            ServerEvent::ToUser {
                user_id: user_id.to_string(),
                event: event.to_string(),
                data,
            },
        );
    }
}
