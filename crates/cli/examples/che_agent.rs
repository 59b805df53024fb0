//! An example Che workspace agent protected by `tessera-verify` in agent
//! mode: it trusts nothing but its environment (`CHE_MACHINE_AUTH_SIGNATURE__*`,
//! `CHE_WORKSPACE_ID`) and accepts only its workspace's machine tokens.
//!
//!     eval "$(tessera workspace env <id> --url http://127.0.0.1:8080 --token $TOKEN)"
//!     cargo run -p tessera-cli --example che_agent
//!     curl -H "Authorization: Bearer $CHE_MACHINE_TOKEN" http://127.0.0.1:<port>/api/whoami
//!
//! Prints `listening on http://ADDR` once ready (`AGENT_LISTEN`, default 127.0.0.1:0).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use tessera_verify::{Accept, AgentConfig, Policy, Subject, TokenKind, VerifyLayer};

async fn whoami(subject: Subject) -> Json<Value> {
    let workspace = match &subject.kind {
        TokenKind::Machine { workspace_id } => Some(workspace_id.clone()),
        TokenKind::User { .. } | TokenKind::Consent { .. } => None,
    };
    Json(json!({"user": subject.id, "username": subject.username, "workspace": workspace}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = AgentConfig::from_env()?;
    let policy = Policy {
        query_token: true,
        accept: Accept::Machines,
        ..Policy::default()
    };
    let app = Router::new()
        .route("/api/whoami", get(whoami))
        .route_layer(VerifyLayer::new(Arc::new(config.verifier()), policy));
    let listen = std::env::var("AGENT_LISTEN").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
