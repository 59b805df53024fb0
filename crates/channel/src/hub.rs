//! Forwarding server events into Socket.IO. Each node forwards the events
//! published on it; the adapter carries them to sockets on every node.

use serde_json::json;
use socketioxide::adapter::Adapter;
use socketioxide::SocketIo;
use tessera_oauth::events::ServerEvent;
use tessera_oauth::TokenService;
use tokio::sync::broadcast::error::RecvError;

pub fn forward<A: Adapter>(tokens: TokenService, io: SocketIo<A>) {
    let mut events = tokens.events.subscribe();
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "event channel fell behind; events dropped");
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
                    let room = format!("session:{session_id}");
                    let told = io
                        .to(room.clone())
                        .emit("unauthorized", &json!({"message": "session revoked"}))
                        .await;
                    let cut = io.to(room).disconnect().await;
                    let failed = told
                        .err()
                        .map(|e| e.to_string())
                        .or(cut.err().map(|e| e.to_string()));
                    if let Some(e) = failed {
                        tracing::warn!(error = %e, session = %session_id, "cutting a revoked session's sockets failed");
                    }
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
