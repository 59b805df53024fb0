//! Operations endpoints: liveness, readiness (checks the database, and
//! turns 503 when the node drains for shutdown) and the Prometheus scrape
//! endpoint.

use crate::{AppState, Metrics};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use tessera_oauth::Services;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// The health endpoints' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(live, ready))]
pub(crate) struct Api;

/// A health answer (MicroProfile Health's shape).
#[derive(Serialize, ToSchema)]
struct Health {
    /// `UP` or `DOWN`.
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checks: Vec<Check>,
}

/// One readiness check.
#[derive(Serialize, ToSchema)]
struct Check {
    /// `database`, `event_channel` or `shutdown`.
    name: &'static str,
    /// `UP`, `DOWN` or `DRAINING`.
    status: &'static str,
    /// The database backend (`sqlite` or `postgres`).
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
}

#[utoipa::path(get, path = "/health/live", tag = "health",
    summary = "Liveness: the process answers",
    responses((status = 200, body = Health)))]
async fn live() -> impl IntoResponse {
    Json(Health {
        status: "UP",
        checks: Vec::new(),
    })
}

/// 200 when the database answers within `PING_TIMEOUT`; 503 (with
/// `Retry-After`, added by `app`) otherwise, and at once while the node
/// drains for shutdown. Answers within a second in every state.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    summary = "Readiness: the database and the event channel answer, and the node is not draining",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "Not ready; `Retry-After` says when to retry", body = Health)))]
async fn ready(
    State(svc): State<Services>,
    State(metrics): State<Arc<Metrics>>,
) -> impl IntoResponse {
    if svc.health.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "DOWN",
                checks: vec![Check {
                    name: "shutdown",
                    status: "DRAINING",
                    backend: None,
                }],
            }),
        );
    }
    let database = svc.health.ping().await;
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness check failed");
    }
    // The event channel's adapter (several nodes on PostgreSQL): while its
    // connection is down, revocations and events on other nodes miss this
    // node's sockets.
    let events = metrics.event_adapter_up();
    let status = |up: bool| if up { "UP" } else { "DOWN" };
    let checks = vec![
        Check {
            name: "database",
            status: status(database.is_ok()),
            backend: Some(svc.health.backend()),
        },
        Check {
            name: "event_channel",
            status: status(events),
            backend: None,
        },
    ];
    if database.is_ok() && events {
        (
            StatusCode::OK,
            Json(Health {
                status: "UP",
                checks,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "DOWN",
                checks,
            }),
        )
    }
}

/// The exposition in the format the scraper's `Accept` asks for
/// ([`crate::metrics::Format::negotiate`]).
async fn metrics(
    State(metrics): State<Arc<Metrics>>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::Format::negotiate(accept);
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept"),
        ],
        metrics.render_as(format),
    )
}
