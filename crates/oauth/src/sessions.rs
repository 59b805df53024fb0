//! Ending sessions and saying so: every path that ends a session (logout,
//! revocation, an administrator, refresh-token reuse, a disabled client)
//! comes through here, which publishes `SessionRevoked` after the commit so
//! the event channel cuts the session's sockets on every node.

use crate::events::{ServerEvent, ServerEvents};
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
}

impl Sessions {
    /// Server events, for the event channel to forward.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ServerEvent> {
        self.events.subscribe()
    }

    /// Whether the session exists and is active (not ended, not expired).
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
        if let Some(user_id) = &ended {
            self.announce_ended(user_id, vec![session_id.to_string()]);
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
        self.announce_ended(user_id, ended);
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
            self.announce_ended(&user_id, vec![session_id]);
        }
        if n > 0 {
            tracing::info!(client = %client.client_id, sessions = n, "client's sessions ended");
        }
        Ok(n)
    }

    /// Publishes `SessionRevoked` for sessions of `user_id` the store has
    /// just revoked.
    pub fn announce_ended(&self, user_id: &str, session_ids: Vec<String>) {
        for session_id in session_ids {
            self.events.publish(ServerEvent::SessionRevoked {
                user_id: user_id.to_string(),
                session_id,
            });
        }
    }

    /// Sends `event` with `data` to every socket of the user, on any node
    /// (the me-channel).
    pub fn publish_to_user(&self, user_id: &str, event: &str, data: serde_json::Value) {
        self.events.publish(ServerEvent::ToUser {
            user_id: user_id.to_string(),
            event: event.to_string(),
            data,
        });
    }
}
