//! The authenticated event channel: Socket.IO (socketioxide) with Codewind's
//! UISocket handshake and CodeStream's me-channel.
//!
//! - A socket authenticates with the v4 handshake `auth: {token}` (or an
//!   `Authorization: Bearer` header) at connect time, or afterwards by
//!   emitting `authentication` `{token}` (the npm `socketio-auth` protocol
//!   Codewind used), answered by `authenticated` or `unauthorized`
//!   `{message}` and a disconnect. Until then it is in no room and has no
//!   event handlers, so it receives nothing and its events are ignored; after
//!   `auth_timeout` it is cut.
//! - Access tokens of every enabled realm are accepted; the token's issuer
//!   names the realm, whose keys must verify it (`auth.rs`).
//! - An authenticated socket joins `user:["<realm id>","<user id>"]` (its
//!   me-channel) and `session:["<realm id>","<session id>"]`: rooms are keyed
//!   by realm, so one realm's events never reach another realm's sockets, on
//!   this node or (the room names travel with each message) on any other.
//!   `Sessions::publish_to_user` reaches every socket of the user on any
//!   node; a revoked session's sockets get `unauthorized`
//!   `{message: "session revoked"}` and are disconnected. A socket is not cut
//!   when its access token merely expires (Codewind's rule).
//! - Several nodes share events through `socketioxide-postgres` (LISTEN/NOTIFY
//!   on the database they already share) over a connection that comes back
//!   after the database does (`pg_driver.rs`), with TLS as the database URL
//!   says (`tls.rs`); a single node uses the in-memory adapter. When the
//!   other nodes cannot be reached, events and revocations still reach this
//!   node's sockets.

mod auth;
mod handlers;
mod hub;
pub mod pg_driver;
pub mod tls;

use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::Router;
use pg_driver::ResilientDriver;
use socketioxide::adapter::LocalAdapter;
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;
use socketioxide_postgres::{CustomPostgresAdapter, PostgresAdapterConfig, PostgresAdapterCtr};
use std::sync::Arc;
use std::time::Duration;
use tessera_http::{AppState, Metrics};
use tessera_oauth::Services;

/// Settings of the event channel.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// Where Socket.IO is served (Socket.IO's default: `/socket.io`).
    pub path: String,
    /// A socket that has not authenticated by then is disconnected.
    pub auth_timeout: Duration,
    /// Live sockets one user may hold (across nodes); more are refused.
    pub max_sockets_per_user: usize,
    /// Largest Socket.IO message accepted, in bytes.
    pub max_payload: u64,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            path: "/socket.io".into(),
            auth_timeout: Duration::from_secs(5),
            max_sockets_per_user: 32,
            max_payload: 64 * 1024,
        }
    }
}

/// How nodes share events.
pub enum Fanout {
    /// One node: rooms live in memory.
    Local,
    /// Several nodes on one PostgreSQL database (LISTEN/NOTIFY); the URL of
    /// that database.
    Postgres(String),
}

#[derive(Clone)]
pub(crate) struct Ctx {
    pub services: Services,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ChannelConfig>,
}

/// Serves the channel in front of `router` and starts forwarding server
/// events (me-channel messages, session revocations) to sockets.
pub async fn attach(
    router: Router,
    state: &AppState,
    config: ChannelConfig,
    fanout: Fanout,
) -> Result<Router, ChannelError> {
    let ctx = Ctx {
        services: state.services.clone(),
        metrics: state.metrics.clone(),
        config: Arc::new(config.clone()),
    };
    let compact = axum::middleware::map_request({
        let path = config.path.clone();
        move |req: Request| {
            let ours = req.uri().path().starts_with(path.as_str());
            async move {
                if ours {
                    compact_head(req)
                } else {
                    req
                }
            }
        }
    });
    let builder = SocketIo::builder()
        .req_path(config.path.clone())
        .max_payload(config.max_payload)
        .ws_max_message_size(config.max_payload as usize)
        .ws_max_frame_size(config.max_payload as usize)
        .with_state(ctx.clone());
    match fanout {
        Fanout::Local => {
            let (layer, io) = builder.build_layer();
            io.ns(
                "/",
                handlers::on_connect::<LocalAdapter>.with(handlers::handshake::<LocalAdapter>),
            );
            hub::forward(ctx, io);
            Ok(router.layer(layer).layer(compact))
        }
        Fanout::Postgres(url) => {
            let (mut pg, tls) = tls::pg_config(&url).map_err(ChannelError::Adapter)?;
            // Named, so operators (and the outage test) can tell it apart.
            if pg.get_application_name().is_none() {
                pg.application_name("tessera-events");
            }
            let driver = ResilientDriver::connect(pg, tls)
                .await
                .map_err(|e| ChannelError::Adapter(e.to_string()))?;
            let link = driver.link();
            let ctr = PostgresAdapterCtr::new_with_driver(
                driver,
                PostgresAdapterConfig::new().with_prefix("tessera"),
            );
            let (layer, io) = builder
                .with_adapter::<CustomPostgresAdapter<_, ResilientDriver>>(ctr)
                .build_layer();
            type Pg = CustomPostgresAdapter<socketioxide::adapter::Emitter, ResilientDriver>;
            io.ns(
                "/",
                handlers::on_connect::<Pg>.with(handlers::handshake::<Pg>),
            )
            .await
            .map_err(|e| ChannelError::Adapter(e.to_string()))?;
            hub::follow_link(ctx.clone(), io.clone(), link);
            hub::forward(ctx, io);
            Ok(router.layer(layer).layer(compact))
        }
    }
}

/// Copies a Socket.IO request's URI and headers into allocations of their
/// own. As hyper parses them they are slices of the connection's read buffer
/// (8-16 KiB), and engineioxide keeps every socket's request head for the
/// socket's lifetime: without the copy each idle socket pins that buffer.
fn compact_head(mut req: Request) -> Request {
    if let Ok(uri) = req.uri().to_string().parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    // axum's router keeps a clone of the URI as it arrived.
    if let Some(OriginalUri(original)) = req.extensions_mut().get_mut::<OriginalUri>() {
        if let Ok(uri) = original.to_string().parse::<Uri>() {
            *original = uri;
        }
    }
    let headers = std::mem::take(req.headers_mut());
    let mut copied = HeaderMap::with_capacity(headers.len());
    for (name, value) in &headers {
        match (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(name), Ok(mut fresh)) => {
                fresh.set_sensitive(value.is_sensitive());
                copied.append(name, fresh);
            }
            // Cannot happen (both were valid already); keep the original.
            _ => {
                copied.append(name.clone(), value.clone());
            }
        }
    }
    *req.headers_mut() = copied;
    req
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("event channel adapter: {0}")]
    Adapter(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};

    fn inside(buf: &Bytes, part: &[u8]) -> bool {
        let range = buf.as_ptr_range();
        range.contains(&part.as_ptr())
    }

    /// What hyper hands over: URI and header values sharing one big buffer.
    #[test]
    fn the_request_head_no_longer_shares_the_read_buffer() {
        let mut raw = b"/socket.io/?EIO=4&transport=websocket|Bearer abc|x-custom-value".to_vec();
        raw.resize(16 * 1024, 0);
        let buf = Bytes::from(raw);
        let uri = Uri::from_maybe_shared(buf.slice(0..37)).expect("uri");
        let auth = HeaderValue::from_maybe_shared(buf.slice(38..48)).expect("value");
        let custom = HeaderValue::from_maybe_shared(buf.slice(49..63)).expect("value");
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = uri.clone();
        req.extensions_mut().insert(OriginalUri(uri));
        req.headers_mut().insert("authorization", auth);
        req.headers_mut().append("x-custom", custom.clone());
        req.headers_mut().append("x-custom", custom);
        assert!(inside(&buf, req.headers()["authorization"].as_bytes()));

        let req = compact_head(req);
        assert_eq!(req.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert!(!inside(&buf, req.uri().path().as_bytes()));
        let original = &req.extensions().get::<OriginalUri>().expect("kept").0;
        assert_eq!(original, req.uri());
        assert!(!inside(&buf, original.path().as_bytes()));
        assert_eq!(req.headers()["authorization"], "Bearer abc");
        assert_eq!(req.headers().get_all("x-custom").iter().count(), 2);
        for value in req.headers().values() {
            assert!(
                !inside(&buf, value.as_bytes()),
                "{value:?} still shares the buffer"
            );
        }
    }
}
