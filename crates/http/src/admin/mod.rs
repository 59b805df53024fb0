//! The subset of Keycloak's Admin REST API that cwctl and python-keycloak's
//! `KeycloakAdmin` use, with Keycloak's JSON representations. Callers are
//! `master` realm users holding the `admin` role, or the local operator (the
//! `tessera admin` CLI working directly on a data directory).

mod clients;
mod keys;
mod realms;
mod repr;
mod users;

use crate::error::AdminError;
use crate::extract::bearer;
use crate::AppState;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;
use tessera_core::Realm;
use tessera_oauth::data::{Failure, StoreError};
use tessera_oauth::provision::MASTER_REALM;
use tessera_oauth::Services;

/// Request extension marking a request made in-process by the `tessera
/// admin` CLI on its own data directory. Architecture invariant: only the
/// CLI's in-process router inserts it; nothing received over the network can.
#[derive(Clone, Copy, Debug)]
pub struct LocalOperator;

/// An authorised administrator: proof that the request may use the Admin API.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.extensions.get::<LocalOperator>().is_some() {
            return Ok(Self);
        }
        let unauthorized = || AdminError::new(StatusCode::UNAUTHORIZED, "unauthorized");
        let token = bearer(&parts.headers).ok_or_else(unauthorized)?;
        let svc = &state.services;
        let master = svc
            .realms
            .realm(MASTER_REALM)
            .await
            .map_err(|_| unauthorized())?;
        let (claims, _session) = svc
            .verifier
            .verify_live_access_token(&master, token)
            .await
            .map_err(|_| unauthorized())?;
        // Roles are read from the database, not the token, so removing the
        // role takes effect before the token expires.
        match svc.admin.is_administrator(&master, &claims.sub).await? {
            Some(true) => Ok(Self),
            Some(false) => Err(AdminError::new(StatusCode::FORBIDDEN, "forbidden")),
            None => Err(unauthorized()),
        }
    }
}

/// Resolves the `{realm}` path segment for admin handlers (disabled realms included).
pub(crate) async fn realm(svc: &Services, name: &str) -> Result<Realm, AdminError> {
    svc.admin
        .realm(name)
        .await?
        .ok_or_else(|| AdminError::not_found("realm"))
}

pub fn router() -> Router<AppState> {
    let r = "/admin/realms/{realm}";
    Router::new()
        .route("/admin/realms", get(realms::list).post(realms::create))
        .route(
            r,
            get(realms::get).put(realms::update).delete(realms::delete),
        )
        .route(
            &format!("{r}/clients"),
            get(clients::list).post(clients::create),
        )
        .route(
            &format!("{r}/clients/{{id}}"),
            get(clients::get)
                .put(clients::update)
                .delete(clients::delete),
        )
        .route(
            &format!("{r}/clients/{{id}}/client-secret"),
            get(clients::get_secret).post(clients::regenerate_secret),
        )
        .route(
            &format!("{r}/clients/{{id}}/service-account-user"),
            get(clients::service_account_user),
        )
        .route(&format!("{r}/users"), get(users::list).post(users::create))
        .route(&format!("{r}/users/count"), get(users::count))
        .route(
            &format!("{r}/users/{{id}}"),
            get(users::get).put(users::update).delete(users::delete),
        )
        .route(
            &format!("{r}/users/{{id}}/reset-password"),
            put(users::reset_password),
        )
        .route(&format!("{r}/users/{{id}}/sessions"), get(users::sessions))
        .route(&format!("{r}/users/{{id}}/logout"), post(users::logout))
        .route(&format!("{r}/sessions/{{session}}"), delete(delete_session))
        .route(&format!("{r}/keys"), get(keys::list))
        .route(&format!("{r}/keys/rotate"), post(keys::rotate))
}

/// `DELETE /admin/realms/{realm}/sessions/{session}`: ends one session.
#[utoipa::path(
    delete,
    path = "/admin/realms/{realm}/sessions/{session}",
    tag = "admin",
    summary = "End one session",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("session" = String, Path, description = "Session id")),
    responses((status = 204, description = "Ended"), crate::error::AdminErrors)
)]
async fn delete_session(
    _: Admin,
    axum::extract::State(svc): axum::extract::State<Services>,
    Path((realm_name, session_id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let realm = realm(&svc, &realm_name).await?;
    svc.admin
        .end_session(&realm, &session_id)
        .await
        .map_err(|e| match e {
            Failure::Database(StoreError::NotFound) => AdminError::not_found("session"),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The Admin API's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    realms::list,
    realms::create,
    realms::get,
    realms::update,
    realms::delete,
    clients::list,
    clients::create,
    clients::get,
    clients::update,
    clients::delete,
    clients::get_secret,
    clients::regenerate_secret,
    clients::service_account_user,
    users::list,
    users::count,
    users::create,
    users::get,
    users::update,
    users::delete,
    users::reset_password,
    users::sessions,
    users::logout,
    delete_session,
    keys::list,
    keys::rotate,
))]
pub(crate) struct Api;

/// A 201 with Keycloak's `Location` header.
pub(crate) fn created(location: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
    )
        .into_response()
}
