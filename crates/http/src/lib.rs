//! Tessera's HTTP surface: axum routers per feature (OIDC protocol, Admin
//! REST, Che settings, operations, the OpenAPI document and Swagger UI) and
//! the mapping of domain errors to
//! responses. `app(state)` builds the whole router so tests can drive it with
//! `oneshot`, without a socket.

pub mod admin;
mod che;
mod connect;
mod consent;
pub mod error;
mod extract;
pub mod metrics;
mod oidc;
pub mod openapi;
mod ops;
pub mod pages;
mod workspaces;

pub use admin::LocalOperator;
pub use extract::bearer;
pub use metrics::Metrics;

use axum::extract::FromRef;
use axum::Router;
use std::sync::Arc;
use tessera_connect::ConnectService;
use tessera_oauth::Services;
use tower_http::trace::TraceLayer;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// The realm realm-less endpoints act in (Che settings, later workspaces...).
    pub default_realm: String,
    /// `che.keycloak.client_id` in `/api/keycloak/settings`.
    pub che_client_id: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Load balancers whose `X-Forwarded-For` is believed: behind them, the
    /// client's address (sessions, per-address limits) is the last address
    /// they appended that is not one of them.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            default_realm: tessera_oauth::provision::DEFAULT_REALM.into(),
            che_client_id: tessera_oauth::provision::DEFAULT_CLIENT.into(),
            max_body_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<HttpSettings>,
    /// Upstream providers, environments and the relay.
    pub connect: Arc<ConnectService>,
}

impl FromRef<AppState> for Services {
    fn from_ref(s: &AppState) -> Self {
        s.services.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(s: &AppState) -> Self {
        s.metrics.clone()
    }
}

impl FromRef<AppState> for Arc<HttpSettings> {
    fn from_ref(s: &AppState) -> Self {
        s.settings.clone()
    }
}

/// The complete application. Every Keycloak-style path is served both at the
/// root and under the legacy `/auth` prefix that Codewind and Che use.
pub fn app(state: AppState) -> Router {
    let keycloak = Router::new()
        .merge(oidc::router())
        .merge(pages::router())
        .merge(admin::router())
        .merge(consent::realm_router())
        .merge(connect::account_router());
    Router::new()
        .merge(keycloak.clone())
        .nest("/auth", keycloak)
        .merge(oidc::well_known_router(&state.services.config.public_url))
        .merge(consent::default_realm_router(&state))
        .merge(che::router())
        .merge(connect::router(&state))
        .merge(workspaces::router(&state))
        .merge(ops::router())
        .merge(openapi::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.settings.clone(),
            extract::client_address,
        ))
        .layer(axum::middleware::map_response(error::retry_after_on_503))
        .layer(
            // Spans carry the path only: query strings (which may hold
            // tokens) never reach the logs.
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}
