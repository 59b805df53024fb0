//! Socket lifecycle: the handshake middleware (v4 `auth` / Authorization
//! header), the `authentication` event (socketio-auth), admission into the
//! rooms, the unauthenticated timeout, and the example application handler.

use crate::auth::{identify, still_live, Identity, Reject};
use crate::Ctx;
use serde::Deserialize;
use serde_json::{json, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, MaybeExtension, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use socketioxide::SocketIo;
use std::fmt;

/// A socket's verified identity, kept in its extensions.
#[derive(Clone, Debug)]
pub struct Authenticated(pub std::sync::Arc<Identity>);

#[derive(Debug, Default, Deserialize)]
pub struct TokenPayload {
    #[serde(default)]
    token: Option<String>,
}

/// `connect_error` carries this one generic message whatever went wrong, so
/// the handshake tells a prober nothing.
#[derive(Debug)]
pub struct Unauthorized;

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unauthorized")
    }
}

fn bearer(s: &SocketRef<impl Adapter>) -> Option<String> {
    let value = s
        .req_parts()
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Connect middleware: a token in the handshake must be valid (else
/// `connect_error`); no token at all defers to the `authentication` event.
pub async fn handshake<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<TokenPayload>,
    State(ctx): State<Ctx>,
) -> Result<(), Unauthorized> {
    let token = auth.ok().and_then(|a| a.token).or_else(|| bearer(&s));
    let Some(token) = token else {
        return Ok(());
    };
    match identify(&ctx, &token).await {
        Ok(identity) => {
            s.extensions
                .insert(Authenticated(std::sync::Arc::new(identity)));
            // The middleware's socket is the one the client gets: its
            // handlers are in place before CONNECT is even sent.
            enable(&s);
            Ok(())
        }
        Err(reason) => {
            ctx.metrics.socket_rejected(reason.as_str());
            Err(Unauthorized)
        }
    }
}

pub async fn on_connect<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, State(ctx): State<Ctx>) {
    // Handlers first: an event that arrives before its handler is lost.
    s.on_disconnect(on_disconnect);
    ctx.metrics.socket_connected(1);
    if let Some(Authenticated(identity)) = s.extensions.get::<Authenticated>() {
        admit(&s, &io, &ctx, identity).await;
        return;
    }
    s.on("authentication", authentication::<A>);
    let timeout = ctx.config.auth_timeout;
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if s.connected() && s.extensions.get::<Authenticated>().is_none() {
            refuse(s, &ctx, Reject::Timeout);
        }
    });
}

async fn on_disconnect(
    State(ctx): State<Ctx>,
    MaybeExtension(authed): MaybeExtension<Authenticated>,
    reason: DisconnectReason,
) {
    ctx.metrics.socket_connected(-1);
    if authed.is_some() {
        ctx.metrics.socket_authenticated(-1);
    }
    tracing::debug!(%reason, "socket disconnected");
}

/// socketio-auth: `authentication` `{token}` -> `authenticated` (and the ack)
/// or `unauthorized` `{message}` and a disconnect.
async fn authentication<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    TryData(payload): TryData<TokenPayload>,
    ack: AckSender<A>,
    State(ctx): State<Ctx>,
) {
    if s.extensions.get::<Authenticated>().is_some() {
        ack.send(&true).ok();
        return;
    }
    let token = payload.ok().and_then(|p| p.token).unwrap_or_default();
    match identify(&ctx, &token).await {
        Ok(identity) => {
            let identity = std::sync::Arc::new(identity);
            s.extensions.insert(Authenticated(identity.clone()));
            enable(&s);
            if admit(&s, &io, &ctx, identity).await {
                ack.send(&true).ok();
            }
        }
        Err(reason) => refuse(s, &ctx, reason),
    }
}

/// The application handlers an authenticated socket gets. Registered before
/// anything awaits: an event that arrives before its handler is lost, and a
/// handshake-authenticated client may emit the moment it is connected.
fn enable<A: Adapter>(s: &SocketRef<A>) {
    s.on("ping", ping::<A>);
}

/// Joins the socket to its rooms (me-channel and session). Returns false
/// (and cuts the socket) if it may not stay.
async fn admit<A: Adapter>(
    s: &SocketRef<A>,
    io: &SocketIo<A>,
    ctx: &Ctx,
    identity: std::sync::Arc<Identity>,
) -> bool {
    let user_room = format!("user:{}", identity.user_id);
    s.join(vec![
        user_room.clone(),
        format!("session:{}", identity.session_id),
    ]);
    // Counted after joining, across nodes: of racing sockets the later ones go.
    let held = io
        .within(user_room)
        .fetch_sockets()
        .await
        .map(|v| v.len())
        .unwrap_or(0);
    if held > ctx.config.max_sockets_per_user {
        refuse(s.clone(), ctx, Reject::TooMany);
        return false;
    }
    // A revocation published between the token check and the join found no
    // socket in the session's room: look again.
    if !still_live(ctx, &identity.session_id).await {
        refuse(s.clone(), ctx, Reject::Revoked);
        return false;
    }
    ctx.metrics.socket_authenticated(1);
    s.emit("authenticated", &true).ok();
    true
}

fn refuse<A: Adapter>(s: SocketRef<A>, ctx: &Ctx, reason: Reject) {
    ctx.metrics.socket_rejected(reason.as_str());
    s.emit("unauthorized", &json!({"message": reason.message()}))
        .ok();
    s.disconnect().ok();
}

/// The example application handler: `ping` -> `pong` with the verified
/// subject (and the same as the ack, if the client asked for one).
async fn ping<A: Adapter>(
    s: SocketRef<A>,
    MaybeExtension(authed): MaybeExtension<Authenticated>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
) {
    let Some(Authenticated(identity)) = authed else {
        return;
    };
    let reply = json!({
        "subject": {
            "id": identity.user_id,
            "username": identity.username,
            "session": identity.session_id,
        },
        "data": data.unwrap_or(Value::Null),
    });
    s.emit("pong", &reply).ok();
    ack.send(&reply).ok();
}
