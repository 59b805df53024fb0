//! `/admin/realms/{realm}/users`: users, their passwords and their sessions.

use super::repr::{CredentialRep, SessionRep, UserRep};
use super::{created, realm, Admin};
use crate::error::AdminError;
use crate::extract::AdminJson;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use std::collections::BTreeMap;
use tessera_core::time::now_ms;
use tessera_core::{Realm, Secret, User};
use tessera_oauth::data::{Failure, StoreError, UserQuery};
use tessera_oauth::Services;

fn to_rep(u: &User) -> UserRep {
    UserRep {
        id: Some(u.id.clone()),
        username: Some(u.username.clone()),
        email: u.email.clone(),
        email_verified: Some(u.email_verified),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        enabled: Some(u.enabled),
        created_timestamp: Some(u.created_at),
        attributes: Some(u.attributes.clone()).filter(|a| !a.is_empty()),
        realm_roles: Some(u.roles.clone()),
        credentials: None,
        required_actions: Some(if u.password_temporary {
            vec!["UPDATE_PASSWORD".into()]
        } else {
            vec![]
        }),
    }
}

/// The password credential of a representation, if any.
fn password_of(
    creds: Option<Vec<CredentialRep>>,
) -> Result<Option<(Secret<String>, bool)>, AdminError> {
    let Some(cred) = creds
        .into_iter()
        .flatten()
        .find(|c| c.type_.as_deref().unwrap_or("password") == "password")
    else {
        return Ok(None);
    };
    let value = cred
        .value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AdminError::bad_request("password must not be empty"))?;
    Ok(Some((Secret::new(value), cred.temporary.unwrap_or(false))))
}

/// Applies the fields present in `rep`, validating each.
fn apply(u: &mut User, rep: &UserRep) -> Result<(), AdminError> {
    if let Some(name) = &rep.username {
        let name = name.trim().to_lowercase();
        if name.is_empty() || name.len() > 255 {
            return Err(AdminError::bad_request("username must be 1-255 characters"));
        }
        u.username = name;
    }
    if let Some(email) = &rep.email {
        let email = email.trim().to_lowercase();
        if !email.is_empty() && !email.contains('@') {
            return Err(AdminError::bad_request("invalid email address"));
        }
        u.email = Some(email).filter(|e| !e.is_empty());
    }
    if let Some(v) = rep.email_verified {
        u.email_verified = v;
    }
    if let Some(f) = &rep.first_name {
        u.first_name = Some(f.clone()).filter(|f| !f.is_empty());
    }
    if let Some(l) = &rep.last_name {
        u.last_name = Some(l.clone()).filter(|l| !l.is_empty());
    }
    if let Some(e) = rep.enabled {
        u.enabled = e;
    }
    if let Some(a) = &rep.attributes {
        u.attributes = a.clone();
    }
    if let Some(roles) = &rep.realm_roles {
        u.roles = roles.clone();
    }
    Ok(())
}

fn conflict(e: Failure) -> AdminError {
    match e {
        Failure::Database(StoreError::Conflict(_)) => {
            AdminError::conflict("User exists with same username")
        }
        other => other.into(),
    }
}

/// `GET .../users` filters (Keycloak's).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    search: Option<String>,
    username: Option<String>,
    email: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::lenient_bool")]
    exact: bool,
    first: Option<i64>,
    max: Option<i64>,
}

#[utoipa::path(
    operation_id = "users_list",
    get,
    path = "/admin/realms/{realm}/users",
    tag = "admin",
    summary = "Search users",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ListQuery),
    responses((status = 200, body = Vec<UserRep>), crate::error::AdminErrors)
)]
pub async fn list(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<UserRep>>, AdminError> {
    let realm = realm(&svc, &name).await?;
    let query = UserQuery {
        search: q.search.filter(|s| !s.is_empty() && s != "*"),
        username: q.username.filter(|s| !s.is_empty()),
        email: q.email.filter(|s| !s.is_empty()),
        exact: q.exact,
        first: q.first.unwrap_or(0),
        max: q.max.unwrap_or(100),
    };
    Ok(Json(
        svc.admin
            .list_users(&realm, &query)
            .await?
            .iter()
            .map(to_rep)
            .collect(),
    ))
}

#[utoipa::path(
    operation_id = "users_count",
    get,
    path = "/admin/realms/{realm}/users/count",
    tag = "admin",
    summary = "Count users",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name")),
    responses((status = 200, body = i64), crate::error::AdminErrors)
)]
pub async fn count(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
) -> Result<Json<i64>, AdminError> {
    let realm = realm(&svc, &name).await?;
    Ok(Json(svc.admin.count_users(&realm).await?))
}

#[utoipa::path(
    operation_id = "users_create",
    post,
    path = "/admin/realms/{realm}/users",
    tag = "admin",
    summary = "Create a user",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name")),
    request_body = UserRep,
    responses((status = 201, description = "Created; `Location` names the user", headers(("Location" = String))), crate::error::AdminErrors)
)]
pub async fn create(
    _: Admin,
    State(svc): State<Services>,
    Path(name): Path<String>,
    AdminJson(rep): AdminJson<UserRep>,
) -> Result<Response, AdminError> {
    let realm = realm(&svc, &name).await?;
    if rep.username.as_deref().is_none_or(|u| u.trim().is_empty()) {
        return Err(AdminError::bad_request("User name is missing"));
    }
    let mut u = User {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        username: String::new(),
        email: None,
        email_verified: false,
        first_name: None,
        last_name: None,
        enabled: true,
        password_hash: None,
        password_temporary: false,
        roles: vec![],
        attributes: BTreeMap::new(),
        created_at: now_ms(),
    };
    apply(&mut u, &rep)?;
    if let Some((password, temporary)) = password_of(rep.credentials)? {
        u.password_hash = Some(svc.admin.hash_password(&password).await?);
        u.password_temporary = temporary;
    }
    svc.admin.create_user(&u).await.map_err(conflict)?;
    Ok(created(format!(
        "{}/admin/realms/{}/users/{}",
        svc.config.public_url, realm.name, u.id
    )))
}

async fn load(svc: &Services, realm_name: &str, id: &str) -> Result<(Realm, User), AdminError> {
    let realm = realm(svc, realm_name).await?;
    let user = svc
        .admin
        .user(&realm, id)
        .await?
        .ok_or_else(|| AdminError::not_found("user"))?;
    Ok((realm, user))
}

#[utoipa::path(
    operation_id = "users_get",
    get,
    path = "/admin/realms/{realm}/users/{id}",
    tag = "admin",
    summary = "Read a user",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserRep), crate::error::AdminErrors)
)]
pub async fn get(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<UserRep>, AdminError> {
    Ok(Json(to_rep(&load(&svc, &name, &id).await?.1)))
}

#[utoipa::path(
    operation_id = "users_update",
    put,
    path = "/admin/realms/{realm}/users/{id}",
    tag = "admin",
    summary = "Update a user (absent fields are kept)",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "User id")),
    request_body = UserRep,
    responses((status = 204, description = "Updated"), crate::error::AdminErrors)
)]
pub async fn update(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
    AdminJson(rep): AdminJson<UserRep>,
) -> Result<StatusCode, AdminError> {
    let (realm, mut u) = load(&svc, &name, &id).await?;
    apply(&mut u, &rep)?;
    if let Some((password, temporary)) = password_of(rep.credentials)? {
        u.password_hash = Some(svc.admin.hash_password(&password).await?);
        u.password_temporary = temporary;
    }
    // A disabled user keeps no live sessions (Administration::update_user).
    svc.admin.update_user(&realm, &u).await.map_err(conflict)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    operation_id = "users_delete",
    delete,
    path = "/admin/realms/{realm}/users/{id}",
    tag = "admin",
    summary = "Delete a user and end their sessions",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "User id")),
    responses((status = 204, description = "Deleted"), crate::error::AdminErrors)
)]
pub async fn delete(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let (realm, u) = load(&svc, &name, &id).await?;
    // Its sessions end first, so their sockets hear of it.
    svc.admin.delete_user(&realm, &u).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    operation_id = "users_reset_password",
    put,
    path = "/admin/realms/{realm}/users/{id}/reset-password",
    tag = "admin",
    summary = "Set a user's password",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "User id")),
    request_body = CredentialRep,
    responses((status = 204, description = "Password set"), crate::error::AdminErrors)
)]
pub async fn reset_password(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
    AdminJson(cred): AdminJson<CredentialRep>,
) -> Result<StatusCode, AdminError> {
    let (realm, u) = load(&svc, &name, &id).await?;
    let (password, temporary) = password_of(Some(vec![cred]))?
        .ok_or_else(|| AdminError::bad_request("only password credentials can be reset"))?;
    svc.admin
        .set_password(&realm, &u, &password, temporary)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    operation_id = "users_sessions",
    get,
    path = "/admin/realms/{realm}/users/{id}/sessions",
    tag = "admin",
    summary = "A user's live sessions",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "User id")),
    responses((status = 200, body = Vec<SessionRep>), crate::error::AdminErrors)
)]
pub async fn sessions(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Vec<SessionRep>>, AdminError> {
    let (realm, u) = load(&svc, &name, &id).await?;
    let mut out = Vec::new();
    for (s, client) in svc.admin.user_sessions(&realm, &u).await? {
        let mut clients = BTreeMap::new();
        if let Some(c) = client {
            clients.insert(c.id, c.client_id);
        }
        out.push(SessionRep {
            id: s.id,
            username: u.username.clone(),
            user_id: u.id.clone(),
            ip_address: s.ip,
            start: s.created_at,
            last_access: s.last_used_at,
            remember_me: false,
            clients,
            device_id: s.device_id,
            user_agent: s.user_agent,
            context_name: s.context_name,
            origin: s.origin,
            expires: s.expires_at,
        });
    }
    Ok(Json(out))
}

#[utoipa::path(
    operation_id = "users_logout",
    post,
    path = "/admin/realms/{realm}/users/{id}/logout",
    tag = "admin",
    summary = "End all of a user's sessions",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "User id")),
    responses((status = 204, description = "Sessions ended"), crate::error::AdminErrors)
)]
pub async fn logout(
    _: Admin,
    State(svc): State<Services>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let (realm, u) = load(&svc, &name, &id).await?;
    svc.admin.end_user_sessions(&realm, &u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
