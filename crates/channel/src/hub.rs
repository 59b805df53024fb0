//! Forwarding server events into Socket.IO. Each node forwards the events
//! published on it; the adapter carries them to sockets on every node.

use crate::auth::Reject;
use crate::handlers::{refuse, session_room, user_room, Authenticated, REVOKED};
use crate::Ctx;
use serde_json::json;
use socketioxide::adapter::Adapter;
use socketioxide::operators::BroadcastOperators;
use socketioxide::SocketIo;
use tessera_oauth::events::{RealmEvent, ServerEvent};
use tokio::sync::broadcast::error::RecvError;

pub(crate) fn forward<A: Adapter>(ctx: Ctx, io: SocketIo<A>) {
    let mut events = ctx.services.sessions.subscribe_in_realms();
    tokio::spawn(async move {
        loop {
            let RealmEvent { realm_id, event } = match events.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    // Revocations may be among the lost: check every socket
                    // held here against the database instead.
                    tracing::warn!(
                        skipped = n,
                        "event channel fell behind; re-checking sockets"
                    );
                    sweep(&ctx, &io).await;
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            match event {
                ServerEvent::ToUser {
                    user_id,
                    event,
                    data,
                } => {
                    publish(&io, user_room(&realm_id, &user_id), &event, &data).await;
                }
                ServerEvent::SessionRevoked {
                    user_id,
                    session_id,
                } => {
                    let rooms = Rooms {
                        user: user_room(&realm_id, &user_id),
                        session: session_room(&realm_id, &session_id),
                        revoked: format!("{REVOKED}:{}", session_room(&realm_id, &session_id)),
                    };
                    let user = rooms.user.clone();
                    let notice = json!({"sessionId": session_id});
                    // Its own task: retries must not hold up other events.
                    let io2 = io.clone();
                    tokio::spawn(async move { revoke(&io2, &rooms, &session_id).await });
                    publish(&io, user, "session_revoked", &notice).await;
                }
            }
        }
    });
}

/// Cuts a revoked session's sockets on every node, or, when the other nodes
/// cannot be reached (the adapter's database is down), on this one: a
/// revocation must cut this node's sockets whatever the database does.
async fn revoke<A: Adapter>(io: &SocketIo<A>, rooms: &Rooms, session_id: &str) {
    // This node's sockets first: the adapter sends to the other nodes before
    // it acts locally, and a slow database must not hold up a local cut.
    if let Err(e) = cut(io, Reach::ThisNode, rooms).await {
        tracing::warn!(error = %e, session = %session_id, "revoking a session's sockets here");
    }
    if let Err(e) = cut(io, Reach::AllNodes, rooms).await {
        tracing::warn!(error = %e, session = %session_id,
            "revoking a session's sockets on the other nodes failed; they re-check theirs when they reconnect");
    }
}

/// A revoked session's rooms: its user's me-channel, its own, and the one
/// its sockets wait in while they are cut (all keyed by realm).
struct Rooms {
    user: String,
    session: String,
    revoked: String,
}

#[derive(Clone, Copy)]
enum Reach {
    AllNodes,
    ThisNode,
}

/// Selects `room` on the nodes `reach` says.
fn select<A: Adapter>(io: &SocketIo<A>, reach: Reach, room: String) -> BroadcastOperators<A> {
    match reach {
        Reach::AllNodes => io.to(room),
        Reach::ThisNode => io.local().to(room),
    }
}

/// Tells the session's sockets why, moves them out of the user's and the
/// session's rooms into `revoked:<session room>` (so they hear nothing more and
/// their handlers ignore them), then disconnects them, retrying while any
/// is still there (a socket whose outgoing buffer is full cannot take the
/// DISCONNECT packet at once).
async fn cut<A: Adapter>(io: &SocketIo<A>, reach: Reach, rooms: &Rooms) -> Result<(), String> {
    let session_room = rooms.session.clone();
    let revoked_room = rooms.revoked.clone();
    select(io, reach, session_room.clone())
        .emit("unauthorized", &json!({"message": "session revoked"}))
        .await
        .map_err(|e| e.to_string())?;
    select(io, reach, session_room.clone())
        .join(revoked_room.clone())
        .await
        .map_err(|e| e.to_string())?;
    select(io, reach, session_room.clone())
        .leave(vec![rooms.user.clone(), session_room.clone()])
        .await
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for _ in 0..50 {
        let cut = select(io, reach, revoked_room.clone()).disconnect().await;
        let left = select(io, reach, revoked_room.clone())
            .fetch_sockets()
            .await;
        match (cut, left) {
            (Ok(()), Ok(left)) if left.is_empty() => return Ok(()),
            (Err(e), _) => last = e.to_string(),
            (_, Err(e)) => last = e.to_string(),
            (_, Ok(left)) => last = format!("{} sockets still connected", left.len()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(format!(
        "sockets of a revoked session could not all be disconnected: {last}"
    ))
}

/// Publishes `event` to `room` on every node, or on this one when the other
/// nodes cannot be reached.
async fn publish<A: Adapter>(
    io: &SocketIo<A>,
    room: String,
    event: &str,
    data: &serde_json::Value,
) {
    if let Err(e) = io.to(room.clone()).emit(event, data).await {
        tracing::warn!(error = %e, "me-channel publish to other nodes failed; this node's sockets only");
        if let Err(e) = io.local().to(room).emit(event, data).await {
            tracing::warn!(error = %e, "me-channel publish failed");
        }
    }
}

/// Cuts every socket on this node whose session is no longer live. A session
/// the database cannot answer for now is left alone (not "revoked"): the
/// next sweep or the next event decides.
async fn sweep<A: Adapter>(ctx: &Ctx, io: &SocketIo<A>) {
    let Some(ns) = io.of("/") else { return };
    let mut unknown = 0;
    for s in ns.sockets() {
        if let Some(Authenticated(identity)) = s.extensions.get::<Authenticated>() {
            match ctx.services.sessions.is_active(&identity.session_id).await {
                Ok(true) => {}
                Ok(false) => refuse(s, ctx, Reject::Revoked),
                Err(_) => unknown += 1,
            }
        }
    }
    if unknown > 0 {
        tracing::warn!(
            sockets = unknown,
            "could not re-check some sockets' sessions"
        );
    }
}

/// Follows the adapter's database connection: reports it in the metrics
/// (and so in readiness), and after each reconnection (or a notification
/// dropped) checks every socket held here against the database:
/// revocations made on other nodes meanwhile were never heard.
pub(crate) fn follow_link<A: Adapter>(
    ctx: Ctx,
    io: SocketIo<A>,
    mut link: tokio::sync::watch::Receiver<crate::pg_driver::Link>,
) {
    tokio::spawn(async move {
        let (mut seen, mut lost) = (0, 0);
        loop {
            let now = *link.borrow_and_update();
            ctx.metrics
                .event_adapter_link(now.connected, now.reconnects);
            // Back after an outage, or a notification dropped: what was
            // missed may have been a revocation.
            if now.connected && (now.reconnects > seen || now.lost > lost) {
                (seen, lost) = (now.reconnects, now.lost);
                // Its own task: the link's state must stay current meanwhile.
                let (ctx, io) = (ctx.clone(), io.clone());
                tokio::spawn(async move { sweep(&ctx, &io).await });
            }
            if link.changed().await.is_err() {
                return;
            }
        }
    });
}
