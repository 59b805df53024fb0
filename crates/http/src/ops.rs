//! Operations endpoints: liveness, readiness (checks the database, and
//! turns 503 when the node drains for shutdown) and the Prometheus scrape
//! endpoint.

use crate::{AppState, Metrics};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use tessera_oauth::Services;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn live() -> impl IntoResponse {
    Json(json!({"status": "UP"}))
}

/// 200 when the database answers within `PING_TIMEOUT`; 503 (with
/// `Retry-After`, added by `app`) otherwise, and at once while the node
/// drains for shutdown. Answers within a second in every state.
async fn ready(
    State(svc): State<Services>,
    State(metrics): State<Arc<Metrics>>,
) -> impl IntoResponse {
    if svc.health.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "DOWN", "checks": [{"name": "shutdown", "status": "DRAINING"}]})),
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
    let checks = json!([
        {"name": "database", "status": status(database.is_ok()), "backend": svc.health.backend()},
        {"name": "event_channel", "status": status(events)},
    ]);
    if database.is_ok() && events {
        (
            StatusCode::OK,
            Json(json!({"status": "UP", "checks": checks})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "DOWN", "checks": checks})),
        )
    }
}

async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}
