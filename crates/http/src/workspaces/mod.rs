//! Eclipse Che's workspace API and machine tokens, in Che's shapes:
//! `/api/workspace` (create, list, get by id or `namespace/name`, start,
//! stop, delete, members) and `/api/machine/token/{wsid}`. Every route is
//! protected by `tessera-verify`; which token kinds each accepts is part of
//! its route group below.

mod api;
mod auth;

use crate::AppState;
use axum::routing::{delete, get, post};
use axum::Router;
use tessera_verify::{Accept, Policy, VerifyLayer};

pub(crate) use auth::{provision, verifier};
pub use auth::{verifier_for, DefaultRealm};

/// The workspace API's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        api::create,
        api::list,
        api::get_by_id,
        api::get_by_name,
        api::start,
        api::stop,
        api::delete,
        api::add_member,
        api::machine_token,
        api::env,
    ),
    components(schemas(api::CheErrorBody))
)]
pub(crate) struct Api;

pub fn router(state: &AppState) -> Router<AppState> {
    let realm = DefaultRealm {
        svc: state.services.clone(),
        name: state.settings.default_realm.clone(),
    };
    let verifier = auth::verifier(&realm);
    let layer = |accept, query_token| {
        VerifyLayer::new(
            verifier.clone(),
            Policy {
                query_token,
                accept,
                required_role: None,
                required_scope: None,
                provision: Some(auth::provision(&realm)),
            },
        )
    };
    // Managing workspaces is for users; an agent's machine token may read its
    // own workspace, start/stop it and fetch its token (MachineLoginFilter).
    // `?token=` (Che allows it where a header is impossible: iframes,
    // downloads) is accepted on reads only, never on changes.
    let user_changes = Router::new()
        .route("/api/workspace", post(api::create))
        .route("/api/workspace/{key}", delete(api::delete))
        .route("/api/workspace/{key}/members", post(api::add_member))
        .route_layer(layer(Accept::Users, false));
    let user_reads = Router::new()
        .route("/api/workspace", get(api::list))
        .route("/api/workspace/{key}/env", get(api::env))
        .route_layer(layer(Accept::Users, true));
    let shared_reads = Router::new()
        .route("/api/workspace/{key}", get(api::get_by_id))
        .route("/api/workspace/{key}/{name}", get(api::get_by_name))
        .route("/api/machine/token/{wsid}", get(api::machine_token))
        .route_layer(layer(Accept::Both, true));
    let shared_changes = Router::new()
        .route(
            "/api/workspace/{key}/runtime",
            post(api::start).delete(api::stop),
        )
        .route_layer(layer(Accept::Both, false));
    user_changes
        .merge(user_reads)
        .merge(shared_reads)
        .merge(shared_changes)
}
