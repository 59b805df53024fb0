//! Prometheus metrics: requests by route and status, latency by route, and
//! tokens issued by grant. One registry per application (no globals), so
//! tests can run many apps in one process.
//!
//! `/metrics` answers the exposition format the scraper's `Accept` header
//! prefers, as Prometheus' own client library negotiates: OpenMetrics 1.0
//! when it is asked for (and ranked at least as high as the classic format),
//! otherwise the classic text format 0.0.4 — also the answer to no `Accept`
//! at all, `*/*`, or only types we do not speak. The registry encodes
//! OpenMetrics; [`to_text_004`] rewrites that into the classic format, whose
//! counter families are named with their `_total` suffix.

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

    /// The OpenMetrics exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The exposition in `format`.
    pub fn render_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.render(),
            Format::Text004 => to_text_004(&self.render()),
        }
    }
}

/// The exposition formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
    /// `text/plain; version=0.0.4`, the classic Prometheus text format.
    Text004,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text004 => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header ranks highest (RFC 9110 quality
    /// values; on a tie, OpenMetrics). Media ranges we do not speak, such as
    /// `text/plain; version=1.0.0` or OpenMetrics 2.0, are skipped.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let mut open_metrics = None::<f32>;
        let mut text = None::<f32>;
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let (mut version, mut q) = (None, 1.0_f32);
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "version" => version = Some(value.to_string()),
                    "q" => q = value.parse().unwrap_or(0.0),
                    _ => {}
                }
            }
            let slot = match (media.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => {
                    &mut open_metrics
                }
                ("text/plain", None | Some("0.0.4")) => &mut text,
                _ => continue,
            };
            if q > 0.0 && slot.is_none_or(|best| q > best) {
                *slot = Some(q);
            }
        }
        match (open_metrics, text) {
            (Some(om), Some(t)) if om >= t => Self::OpenMetrics,
            (Some(_), None) => Self::OpenMetrics,
            _ => Self::Text004,
        }
    }
}

/// Rewrites an OpenMetrics exposition into the text format 0.0.4: a counter
/// family `x` (samples `x_total`) is declared as `x_total`; `unknown` becomes
/// `untyped`; `# UNIT` and `# EOF` lines go. Gauges and histograms read the
/// same in both. (The registry holds no info, state-set or gauge-histogram
/// metrics and records no exemplars, the other differences.)
pub fn to_text_004(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let declared = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|kind| Some((kind, line.strip_prefix(kind)?)));
        match declared {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let tail = if kind == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                };
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{kind}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_prometheus() {
        use Format::*;
        // What Prometheus 2.x and 3.x send when scraping.
        let prom2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let prom3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        // Prometheus configured with `scrape_protocols: [PrometheusText0.0.4]`.
        let classic = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let cases = [
            (None, Text004),
            (Some("*/*"), Text004),
            (Some("application/json"), Text004),
            (Some(prom2), OpenMetrics),
            (Some(prom3), OpenMetrics),
            (Some(classic), Text004),
            (Some("text/plain; version=0.0.4"), Text004),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("application/openmetrics-text;q=0.2, text/plain;q=0.9"),
                Text004,
            ),
            (
                Some("application/openmetrics-text;q=0, text/plain"),
                Text004,
            ),
            (Some("application/openmetrics-text;version=2.0.0"), Text004),
            (
                Some("text/plain, application/openmetrics-text"),
                OpenMetrics,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn classic_text_declares_counters_with_their_samples_names() {
        let metrics = Metrics::new();
        metrics.token_issued("password");
        metrics.socket_connected(1);
        let open = metrics.render();
        assert!(
            open.contains("# TYPE tessera_tokens_issued counter\n"),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n"), "{open}");

        let text = to_text_004(&open);
        assert!(
            text.contains("# HELP tessera_tokens_issued_total Token responses"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tessera_tokens_issued_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("tessera_tokens_issued_total{grant=\"password\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tessera_sockets_connected gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        // The rewrite knows these types only; any other would reach a
        // classic parser unchanged.
        for line in open.lines().filter(|l| l.starts_with("# TYPE ")) {
            let kind = line.rsplit(' ').next().unwrap_or("");
            assert!(
                ["counter", "gauge", "histogram", "unknown"].contains(&kind),
                "{line}"
            );
        }
        // Every sample line is unchanged.
        let samples = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        assert_eq!(samples(&open), samples(&text));
    }
}
