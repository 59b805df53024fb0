//! Server events for the event channel: session revocations (so a revoked
//! session's sockets are cut at once) and messages for a user's me-channel.
//! Every path that ends a session goes through `Sessions::end_session`,
//! `end_user_sessions` or `announce_ended`, which publish after the commit.
//!
//! This is an in-process broadcast. The event channel subscribes on every
//! node and forwards through its Socket.IO adapter, which is what carries an
//! event to sockets held by other nodes.

use serde_json::Value;
use tokio::sync::broadcast;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// The session was revoked (logout, admin, account page, device sign-out,
    /// refresh-token reuse): its sockets are cut, and the user's other
    /// sockets get `session_revoked` `{sessionId}` on the me-channel.
    SessionRevoked { user_id: String, session_id: String },
    /// `event` with `data` for every socket of the user, on any node.
    ToUser {
        user_id: String,
        event: String,
        data: Value,
    },
}

/// A broadcast of server events. Slow subscribers lose the oldest events
/// (they are told by `RecvError::Lagged`) rather than slowing revocation.
pub struct ServerEvents(broadcast::Sender<ServerEvent>);

impl Default for ServerEvents {
    fn default() -> Self {
        Self(broadcast::channel(4096).0)
    }
}

impl ServerEvents {
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.0.subscribe()
    }

    pub fn publish(&self, event: ServerEvent) {
        // No subscribers is fine: nothing to tell.
        let _ = self.0.send(event);
    }
}
