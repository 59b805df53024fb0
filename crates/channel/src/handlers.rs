//! Socket lifecycle: the handshake middleware (v4 `auth` / Authorization
//! header), the `authentication` event (socketio-auth), admission into the
//! rooms, the unauthenticated timeout, and the example application handler.

use crate::auth::{identify, still_live, Identity, Reject};
use crate::Ctx;
use serde::Deserialize;
use serde_json::json;
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

/// Counted in the authenticated gauge (so the disconnect handler takes
/// back exactly what was added).
#[derive(Clone, Debug)]
struct Counted;

/// Connect middleware. It runs before CONNECT is sent, on the socket the
/// client gets, so every handler registered here is in place before the
/// client can emit anything. A token in the handshake must be valid (else
/// `connect_error`); no token at all defers to the `authentication` event.
pub async fn handshake<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<TokenPayload>,
    State(ctx): State<Ctx>,
) -> Result<(), Unauthorized> {
    let token = auth
        .ok()
        .and_then(|a| a.token)
        .or_else(|| tessera_http::bearer(&s.req_parts().headers).map(str::to_string));
    if let Some(token) = token {
        match identify(&ctx, &token).await {
            Ok(identity) => {
                s.extensions
                    .insert(Authenticated(std::sync::Arc::new(identity)));
                enable(&s);
            }
            Err(reason) => {
                ctx.metrics.socket_rejected(reason.as_str());
                return Err(Unauthorized);
            }
        }
    } else {
        s.on("authentication", authentication::<A>);
    }
    s.on_disconnect(on_disconnect);
    ctx.metrics.socket_connected(1);
    Ok(())
}

pub async fn on_connect<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, State(ctx): State<Ctx>) {
    if let Some(Authenticated(identity)) = s.extensions.get::<Authenticated>() {
        admit(&s, &io, &ctx, identity).await;
        return;
    }
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
    MaybeExtension(counted): MaybeExtension<Counted>,
    reason: DisconnectReason,
) {
    ctx.metrics.socket_connected(-1);
    if counted.is_some() {
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
            // `insert` hands back what was there: of two racing
            // `authentication` events only the first goes on.
            if s.extensions
                .insert(Authenticated(identity.clone()))
                .is_some()
            {
                ack.send(&true).ok();
                return;
            }
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
    let user_room = user_room(&identity.realm_id, &identity.user_id);
    s.join(vec![
        user_room.clone(),
        session_room(&identity.realm_id, &identity.session_id),
    ]);
    if !s.connected() {
        // It went away while we checked its token: leave no room entries behind.
        s.leave_all();
        return false;
    }
    // Counted after joining, across nodes: of racing sockets the later ones go.
    // If the other nodes cannot be asked, the socket is refused, not waved in.
    let held = match io.within(user_room).fetch_sockets().await {
        Ok(v) => v.len(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot count a user's sockets");
            refuse(s.clone(), ctx, Reject::Unavailable);
            return false;
        }
    };
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
    if s.extensions.insert(Counted).is_none() {
        ctx.metrics.socket_authenticated(1);
    }
    s.emit("authenticated", &true).ok();
    true
}

/// Tells the socket why and cuts it. It leaves its rooms first, so it hears
/// nothing more even if the disconnect has to wait: a socket whose outgoing
/// buffer is full cannot take the DISCONNECT packet yet, and is retried
/// until it goes (its handlers ignore it meanwhile, as it is in no room).
pub(crate) fn refuse<A: Adapter>(s: SocketRef<A>, ctx: &Ctx, reason: Reject) {
    ctx.metrics.socket_rejected(reason.as_str());
    s.leave_all();
    s.join(REVOKED);
    s.emit("unauthorized", &json!({"message": reason.message()}))
        .ok();
    cut(s);
}

/// Disconnects, retrying while the socket's buffer is full.
pub(crate) fn cut<A: Adapter>(s: SocketRef<A>) {
    if s.clone().disconnect().is_ok() {
        return;
    }
    tokio::spawn(async move {
        for _ in 0..300 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if !s.connected() || s.clone().disconnect().is_ok() {
                return;
            }
        }
        tracing::warn!(sid = %s.id, "socket could not be disconnected");
    });
}

/// A user's me-channel room, keyed by realm as well as user: a realm's
/// events never reach another realm's sockets, whatever the ids. The pair is
/// written as a JSON array, so no two pairs give one name.
pub(crate) fn user_room(realm_id: &str, user_id: &str) -> String {
    format!("user:{}", json!([realm_id, user_id]))
}

/// A session's room (revocations cut it), keyed by realm as well.
pub(crate) fn session_room(realm_id: &str, session_id: &str) -> String {
    format!("session:{}", json!([realm_id, session_id]))
}

/// Rooms a refused or revoked socket is moved into while it is being cut:
/// its handlers ignore it from then on.
pub(crate) const REVOKED: &str = "revoked";

pub(crate) fn is_revoked<A: Adapter>(s: &SocketRef<A>) -> bool {
    s.rooms().iter().any(|r| r.starts_with(REVOKED))
}

/// The example application handler: `ping` -> `pong` with the verified
/// subject (and the same as the ack, if the client asked for one). A socket
/// being cut gets nothing.
async fn ping<A: Adapter>(
    s: SocketRef<A>,
    MaybeExtension(authed): MaybeExtension<Authenticated>,
    ack: AckSender<A>,
) {
    let Some(Authenticated(identity)) = authed else {
        return;
    };
    if is_revoked(&s) {
        return;
    }
    let reply = json!({
        "subject": {
            "realm": identity.realm,
            "id": identity.user_id,
            "username": identity.username,
            "session": identity.session_id,
        },
    });
    s.emit("pong", &reply).ok();
    ack.send(&reply).ok();
}
