//! Prometheus metrics: requests by route and status, latency by route, and
//! tokens issued by grant. One registry per application (no globals), so
//! tests can run many apps in one process.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    tokens: Family<GrantLabels, Counter>,
    sockets_connected: Gauge,
    sockets_authenticated: Gauge,
    sockets_rejected: Family<ReasonLabels, Counter>,
    event_adapter_connected: Gauge,
    event_adapter_reconnects: Counter,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let tokens = Family::<GrantLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "tessera_tokens_issued",
            "Token responses issued, by grant type",
            tokens.clone(),
        );
        let sockets_connected = Gauge::default();
        let sockets_authenticated = Gauge::default();
        let sockets_rejected = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "tessera_sockets_connected",
            "Event-channel sockets connected to this node",
            sockets_connected.clone(),
        );
        registry.register(
            "tessera_sockets_authenticated",
            "Event-channel sockets on this node that have authenticated",
            sockets_authenticated.clone(),
        );
        registry.register(
            "tessera_sockets_rejected",
            "Event-channel sockets refused or cut, by reason",
            sockets_rejected.clone(),
        );
        // 1 until a multi-node adapter says otherwise: a single node's
        // in-memory adapter is never down.
        let event_adapter_connected = Gauge::default();
        event_adapter_connected.set(1);
        let event_adapter_reconnects = Counter::default();
        registry.register(
            "tessera_event_adapter_connected",
            "Whether the event channel's adapter reaches the other nodes (its PostgreSQL connection is up)",
            event_adapter_connected.clone(),
        );
        registry.register(
            "tessera_event_adapter_reconnects",
            "Times the event channel's adapter connection to PostgreSQL was restored",
            event_adapter_reconnects.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            tokens,
            sockets_connected,
            sockets_authenticated,
            sockets_rejected,
            event_adapter_connected,
            event_adapter_reconnects,
        }
    }

    pub fn token_issued(&self, grant: &str) {
        self.tokens
            .get_or_create(&GrantLabels {
                grant: grant.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware: counts and times every routed request.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: res.status().as_u16(),
        })
        .inc();
    res
}

impl Metrics {
    /// The event channel's adapter connection: up or down, and how many
    /// times it was restored so far.
    pub fn event_adapter_link(&self, connected: bool, reconnects: u64) {
        self.event_adapter_connected.set(i64::from(connected));
        let counted = self.event_adapter_reconnects.get();
        if reconnects > counted {
            self.event_adapter_reconnects.inc_by(reconnects - counted);
        }
    }

    /// Whether the event channel reaches the other nodes (always, on one).
    pub fn event_adapter_up(&self) -> bool {
        self.event_adapter_connected.get() != 0
    }

    /// The event channel: a socket connected (+1) or went away (-1).
    pub fn socket_connected(&self, delta: i64) {
        self.sockets_connected.inc_by(delta);
    }

    /// The event channel: a socket authenticated (+1) or an authenticated
    /// one went away (-1).
    pub fn socket_authenticated(&self, delta: i64) {
        self.sockets_authenticated.inc_by(delta);
    }

    /// The event channel refused or cut a socket.
    pub fn socket_rejected(&self, reason: &str) {
        self.sockets_rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }
}
