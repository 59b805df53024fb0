//! Forwarding server events into Socket.IO. Each node forwards the events
//! published on it; the adapter carries them to sockets on every node.

use crate::auth::{still_live, Reject};
use crate::handlers::{refuse, Authenticated, REVOKED};
use crate::Ctx;
use serde_json::json;
use socketioxide::adapter::Adapter;
use socketioxide::SocketIo;
use tessera_oauth::events::ServerEvent;
use tokio::sync::broadcast::error::RecvError;

pub(crate) fn forward<A: Adapter>(ctx: Ctx, io: SocketIo<A>) {
    let mut events = ctx.services.sessions.subscribe();
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
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
                    if let Err(e) = io.to(format!("user:{user_id}")).emit(&event, &data).await {
                        tracing::warn!(error = %e, "me-channel publish failed");
                    }
                }
                ServerEvent::SessionRevoked {
                    user_id,
                    session_id,
                } => {
                    // Its own task: retries must not hold up other events.
                    let (io2, user, session) = (io.clone(), user_id.clone(), session_id.clone());
                    tokio::spawn(async move { revoke(&io2, &user, &session).await });
                    let notice = io
                        .to(format!("user:{user_id}"))
                        .emit("session_revoked", &json!({"sessionId": session_id}))
                        .await;
                    if let Err(e) = notice {
                        tracing::warn!(error = %e, "me-channel publish failed");
                    }
                }
            }
        }
    });
}

/// Cuts a revoked session's sockets on every node: tells them why, moves them
/// out of the user's and the session's rooms into `revoked:<session>` (so
/// they hear nothing more and their handlers ignore them), then disconnects
/// them, retrying while any is still there (a socket whose outgoing buffer
/// is full cannot take the DISCONNECT packet at once).
async fn revoke<A: Adapter>(io: &SocketIo<A>, user_id: &str, session_id: &str) {
    let session_room = format!("session:{session_id}");
    let revoked_room = format!("{REVOKED}:{session_id}");
    let steps = async {
        io.to(session_room.clone())
            .emit("unauthorized", &json!({"message": "session revoked"}))
            .await
            .map_err(|e| e.to_string())?;
        io.within(session_room.clone())
            .join(revoked_room.clone())
            .await
            .map_err(|e| e.to_string())?;
        io.within(session_room.clone())
            .leave(vec![format!("user:{user_id}"), session_room.clone()])
            .await
            .map_err(|e| e.to_string())
    };
    if let Err(e) = steps.await {
        tracing::warn!(error = %e, session = %session_id, "revoking a session's sockets");
    }
    for _ in 0..50 {
        let cut = io.within(revoked_room.clone()).disconnect().await;
        let left = io
            .within(revoked_room.clone())
            .fetch_sockets()
            .await
            .map(|v| v.len())
            .unwrap_or(0);
        if cut.is_ok() && left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tracing::warn!(session = %session_id, "sockets of a revoked session could not all be disconnected");
}

/// Cuts every socket on this node whose session is no longer live.
async fn sweep<A: Adapter>(ctx: &Ctx, io: &SocketIo<A>) {
    let Some(ns) = io.of("/") else { return };
    for s in ns.sockets() {
        if let Some(Authenticated(identity)) = s.extensions.get::<Authenticated>() {
            if !still_live(ctx, &identity.session_id).await {
                refuse(s, ctx, Reject::Revoked);
            }
        }
    }
}
