//! Session events for other parts of the server (the event channel closes a
//! revoked session's sockets). Every path that ends a session goes through
//! `TokenService::end_sessions`, which publishes here after the commit.

use tokio::sync::broadcast;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The session was revoked (logout, admin, account page, device sign-out,
    /// refresh-token reuse).
    Revoked { session_id: String },
}

/// A broadcast of session events. Slow subscribers lose the oldest events
/// (they are told by `RecvError::Lagged`) rather than slowing revocation.
pub struct SessionEvents(broadcast::Sender<SessionEvent>);

impl Default for SessionEvents {
    fn default() -> Self {
        Self(broadcast::channel(1024).0)
    }
}

impl SessionEvents {
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.0.subscribe()
    }

    pub fn publish(&self, event: SessionEvent) {
        // No subscribers is fine: nothing to tell.
        let _ = self.0.send(event);
    }
}
