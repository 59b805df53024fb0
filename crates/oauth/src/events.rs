//! Server events for the event channel: session revocations (so a revoked
//! session's sockets are cut at once) and messages for a user's me-channel.
//! Every path that ends a session goes through `Sessions::end_session`,
//! `end_user_sessions` or `announce_ended`, which publish after the commit.
//!
//! This is an in-process broadcast. The event channel subscribes on every
//! node (`subscribe_in_realms`: each event with its realm, as the channel's
//! rooms are keyed by realm and user) and forwards through its Socket.IO
//! adapter, which is what carries an event to sockets held by other nodes.
//! `subscribe` gives the same events without their realm, for subscribers
//! that act on a session id alone (the live-session cache's relay).

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

/// A server event with the id of the realm whose user and session it is
/// about. User and session ids are unique across realms today; the event
/// channel keys its rooms by realm anyway, so that a realm's events can
/// never reach another realm's sockets whatever ids come to look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealmEvent {
    pub realm_id: String,
    pub event: ServerEvent,
}

/// A broadcast of server events. Slow subscribers lose the oldest events
/// (they are told by `RecvError::Lagged`) rather than slowing revocation.
pub struct ServerEvents {
    plain: broadcast::Sender<ServerEvent>,
    in_realms: broadcast::Sender<RealmEvent>,
}

impl Default for ServerEvents {
    fn default() -> Self {
        Self {
            plain: broadcast::channel(4096).0,
            in_realms: broadcast::channel(4096).0,
        }
    }
}

impl ServerEvents {
    /// The events without their realm.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.plain.subscribe()
    }

    /// The events with their realm (the event channel).
    pub fn subscribe_in_realms(&self) -> broadcast::Receiver<RealmEvent> {
        self.in_realms.subscribe()
    }

    pub fn publish(&self, realm_id: &str, event: ServerEvent) {
        // No subscribers is fine: nothing to tell.
        let _ = self.in_realms.send(RealmEvent {
            realm_id: realm_id.to_string(),
            event: event.clone(),
        });
        let _ = self.plain.send(event);
    }
}
