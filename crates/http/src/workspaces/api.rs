//! Workspace and machine-token handlers. Who may do what: the owner may do
//! everything; invited members may read, start, stop and get their machine
//! token; a machine token acts as its user but only on its own workspace.
//! Non-permitted callers get 404, so workspace names are not disclosed.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tessera_core::time::now_ms;
use tessera_core::{OAuthError, Realm, User, Workspace, WorkspaceStatus};
use tessera_oauth::data::{Failure, StoreError};
use tessera_oauth::workspaces::Access;
use tessera_oauth::Services;
use tessera_verify::{Subject, TokenKind};
use utoipa::ToSchema;

/// Che's error shape: `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn not_found() -> Self {
        Self(StatusCode::NOT_FOUND, "Workspace not found".into())
    }
    fn forbidden(m: &str) -> Self {
        Self(StatusCode::FORBIDDEN, m.into())
    }
    fn conflict(m: &str) -> Self {
        Self(StatusCode::CONFLICT, m.into())
    }
    fn bad_request(m: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, m.into())
    }
    /// The database is down for now: 503 (`Retry-After` is added by `app`).
    fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "workspace request: database unavailable");
        Self(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable; retry shortly".into(),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict(_) => {
                Self::conflict("A workspace with this name already exists in the namespace")
            }
            StoreError::Unavailable(d) => Self::unavailable(d),
            StoreError::Unexpected(d) => {
                tracing::error!(error = %d, "workspace request failed");
                Self(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error".into(),
                )
            }
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        if e.code == tessera_core::OAuthErrorCode::TemporarilyUnavailable {
            return Self::unavailable(format!("{e:?}"));
        }
        tracing::error!(error = ?e, "workspace request failed");
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error".into(),
        )
    }
}

impl From<Failure> for ApiError {
    fn from(e: Failure) -> Self {
        match e {
            Failure::Database(e) => e.into(),
            Failure::Service(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(CheErrorBody { message: self.1 })).into_response()
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// The request's realm and the calling user.
async fn caller(svc: &Services, realm_name: &str, subject: &Subject) -> Result<(Realm, User)> {
    let realm = svc.realms.realm(realm_name).await?;
    let user = svc
        .workspaces
        .user(&realm, &subject.id)
        .await?
        .ok_or_else(|| ApiError::forbidden("unknown user"))?;
    Ok((realm, user))
}

/// What the subject may do on `ws`; `None` means "not found" for them.
async fn access(svc: &Services, subject: &Subject, ws: &Workspace) -> Result<Option<Access>> {
    let machine_of = match &subject.kind {
        TokenKind::Machine { workspace_id } => Some(workspace_id.as_str()),
        _ => None,
    };
    Ok(svc.workspaces.access(&subject.id, machine_of, ws).await?)
}

async fn load(
    svc: &Services,
    realm: &Realm,
    subject: &Subject,
    id: &str,
) -> Result<(Workspace, Access)> {
    let ws = svc
        .workspaces
        .workspace(realm, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let access = access(svc, subject, &ws)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((ws, access))
}

/// A workspace addressed by id, with the caller's realm, user record and access.
struct Target {
    realm: Realm,
    user: User,
    ws: Workspace,
    access: Access,
}

async fn target(state: &AppState, subject: &Subject, id: &str) -> Result<Target> {
    let svc = &state.services;
    let (realm, user) = caller(svc, &state.settings.default_realm, subject).await?;
    let (ws, access) = load(svc, &realm, subject, id).await?;
    Ok(Target {
        realm,
        user,
        ws,
        access,
    })
}

/// Che's WorkspaceDto; `runtime` (with the caller's machine token) only
/// while running. Listings use `with_token = false`: they neither mint
/// tokens nor sign one per workspace.
async fn dto(svc: &Services, realm: &Realm, ws: &Workspace, user: &User) -> Result<WorkspaceDto> {
    dto_with(svc, realm, ws, user, true).await
}

async fn dto_with(
    svc: &Services,
    realm: &Realm,
    ws: &Workspace,
    user: &User,
    with_token: bool,
) -> Result<WorkspaceDto> {
    let runtime = if ws.status == WorkspaceStatus::Running {
        let machine_token = if with_token {
            Some(svc.workspaces.machine_token(realm, ws, user).await?)
        } else {
            None
        };
        Some(Runtime {
            machines: BTreeMap::from([(
                "dev-machine",
                Machine {
                    status: "RUNNING",
                    attributes: BTreeMap::new(),
                    servers: BTreeMap::new(),
                },
            )]),
            machine_token,
        })
    } else {
        None
    };
    Ok(WorkspaceDto {
        id: ws.id.clone(),
        namespace: ws.namespace.clone(),
        status: ws.status.as_str(),
        config: WorkspaceConfig {
            name: ws.name.clone(),
        },
        attributes: WorkspaceAttributes {
            created: ws.created_at,
            updated: ws.updated_at,
            owner: ws.owner_id.clone(),
        },
        runtime,
    })
}

/// Che's `WorkspaceDto`, the parts Tessera keeps.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceDto {
    id: String,
    namespace: String,
    /// `STOPPED` or `RUNNING`.
    status: &'static str,
    config: WorkspaceConfig,
    attributes: WorkspaceAttributes,
    /// Only while running.
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<Runtime>,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceConfig {
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceAttributes {
    /// Milliseconds since the epoch.
    created: i64,
    updated: i64,
    /// The owner's user id.
    owner: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    machines: BTreeMap<&'static str, Machine>,
    /// The caller's machine token for this workspace (not in listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    machine_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Machine {
    status: &'static str,
    attributes: BTreeMap<String, String>,
    servers: BTreeMap<String, String>,
}

/// `GET /api/machine/token/{wsid}`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineTokenAnswer {
    machine_token: String,
    workspace_id: String,
    user_id: String,
}

/// Che's error shape.
#[derive(Serialize, ToSchema)]
pub struct CheErrorBody {
    message: String,
}

/// The workspace API's error responses, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// Invalid input.
    #[response(status = 400)]
    BadRequest(CheErrorBody),
    /// No or an invalid token (`WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthorized(CheErrorBody),
    /// Not allowed (only the owner may delete or invite).
    #[response(status = 403)]
    Forbidden(CheErrorBody),
    /// No such workspace, or not visible to the caller.
    #[response(status = 404)]
    NotFound(CheErrorBody),
    /// The workspace's state forbids it (not running, still running, name taken).
    #[response(status = 409)]
    Conflict(CheErrorBody),
    /// The database is unavailable; `Retry-After` says when to retry.
    #[response(status = 503)]
    Unavailable(CheErrorBody),
}

#[derive(Deserialize, ToSchema)]
pub struct CreateWorkspace {
    name: Option<String>,
    namespace: Option<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !matches!(name, "runtime" | "members" | "env")
}

#[utoipa::path(operation_id = "workspace_create", post, path = "/api/workspace", tag = "workspaces",
    summary = "Create a workspace in the caller's namespace",
    request_body = CreateWorkspace,
    security(("bearer" = [])),
    responses((status = 201, body = WorkspaceDto), Errors))]
pub async fn create(
    State(state): State<AppState>,
    subject: Subject,
    body: std::result::Result<Json<CreateWorkspace>, axum::extract::rejection::JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let svc = &state.services;
    let (realm, user) = caller(svc, &state.settings.default_realm, &subject).await?;
    let name = req.name.unwrap_or_default();
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            "name must be 1-100 characters of letters, digits, '-', '_' or '.' (not runtime, members or env)",
        ));
    }
    let namespace = req.namespace.unwrap_or_else(|| user.username.clone());
    if namespace != user.username {
        return Err(ApiError::forbidden(
            "workspaces can only be created in your own namespace",
        ));
    }
    let now = now_ms();
    let ws = Workspace {
        id: format!("workspace{}", uuid::Uuid::new_v4().simple()),
        realm_id: realm.id.clone(),
        owner_id: user.id.clone(),
        namespace,
        name,
        status: WorkspaceStatus::Stopped,
        created_at: now,
        updated_at: now,
    };
    svc.workspaces.create(&ws).await?;
    let body = dto(svc, &realm, &ws, &user).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(operation_id = "workspace_list", get, path = "/api/workspace", tag = "workspaces",
    summary = "The caller's workspaces (owned and shared)",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<WorkspaceDto>), Errors))]
pub async fn list(
    State(state): State<AppState>,
    subject: Subject,
) -> Result<Json<Vec<WorkspaceDto>>> {
    let svc = &state.services;
    let (realm, user) = caller(svc, &state.settings.default_realm, &subject).await?;
    let mut out = Vec::new();
    for ws in svc.workspaces.user_workspaces(&realm, &user).await? {
        out.push(dto_with(svc, &realm, &ws, &user, false).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(operation_id = "workspace_get_by_id", get, path = "/api/workspace/{key}", tag = "workspaces",
    summary = "A workspace by id (a machine token: its own only)",
    params(("key" = String, Path, description = "Workspace id")),
    security(("bearer" = [])),
    responses((status = 200, body = WorkspaceDto), Errors))]
pub async fn get_by_id(
    State(state): State<AppState>,
    subject: Subject,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceDto>> {
    let svc = &state.services;
    let Target {
        realm, user, ws, ..
    } = target(&state, &subject, &id).await?;
    Ok(Json(dto(svc, &realm, &ws, &user).await?))
}

#[utoipa::path(operation_id = "workspace_get_by_name", get, path = "/api/workspace/{key}/{name}", tag = "workspaces",
    summary = "A workspace by namespace and name",
    params(("key" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Workspace name")),
    security(("bearer" = [])),
    responses((status = 200, body = WorkspaceDto), Errors))]
pub async fn get_by_name(
    State(state): State<AppState>,
    subject: Subject,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<WorkspaceDto>> {
    let svc = &state.services;
    let (realm, user) = caller(svc, &state.settings.default_realm, &subject).await?;
    let ws = svc
        .workspaces
        .workspace_by_name(&realm, &namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    access(svc, &subject, &ws)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(dto(svc, &realm, &ws, &user).await?))
}

#[utoipa::path(operation_id = "workspace_start", post, path = "/api/workspace/{key}/runtime", tag = "workspaces",
    summary = "Start a workspace",
    params(("key" = String, Path, description = "Workspace id")),
    security(("bearer" = [])),
    responses((status = 200, body = WorkspaceDto), Errors))]
pub async fn start(
    State(state): State<AppState>,
    subject: Subject,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceDto>> {
    let svc = &state.services;
    let Target {
        realm,
        user,
        mut ws,
        ..
    } = target(&state, &subject, &id).await?;
    // Tokens are issued at start for the owner (and the caller, via the DTO).
    svc.workspaces.start(&realm, &mut ws).await?;
    Ok(Json(dto(svc, &realm, &ws, &user).await?))
}

#[utoipa::path(operation_id = "workspace_stop", delete, path = "/api/workspace/{key}/runtime", tag = "workspaces",
    summary = "Stop a workspace",
    params(("key" = String, Path, description = "Workspace id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Stopped"), Errors))]
pub async fn stop(
    State(state): State<AppState>,
    subject: Subject,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let svc = &state.services;
    let Target { ws, .. } = target(&state, &subject, &id).await?;
    if ws.status != WorkspaceStatus::Running {
        return Err(ApiError::conflict("the workspace is not running"));
    }
    svc.workspaces.stop(&ws).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(operation_id = "workspace_delete", delete, path = "/api/workspace/{key}", tag = "workspaces",
    summary = "Delete a stopped workspace (owner only)",
    params(("key" = String, Path, description = "Workspace id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete(
    State(state): State<AppState>,
    subject: Subject,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let svc = &state.services;
    let Target {
        realm, ws, access, ..
    } = target(&state, &subject, &id).await?;
    if access != Access::Owner {
        return Err(ApiError::forbidden("only the owner may delete a workspace"));
    }
    if ws.status == WorkspaceStatus::Running {
        return Err(ApiError::conflict("stop the workspace before deleting it"));
    }
    // The store deletes only a stopped workspace, so a start racing this
    // request cannot lose a running one.
    match svc.workspaces.delete(&realm, &ws).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => {
            Err(ApiError::conflict("stop the workspace before deleting it"))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddMember {
    user_id: Option<String>,
    username: Option<String>,
}

#[utoipa::path(operation_id = "workspace_add_member", post, path = "/api/workspace/{key}/members", tag = "workspaces",
    summary = "Invite a user (owner only)",
    params(("key" = String, Path, description = "Workspace id")),
    request_body = AddMember,
    security(("bearer" = [])),
    responses((status = 204, description = "Invited"), Errors))]
pub async fn add_member(
    State(state): State<AppState>,
    subject: Subject,
    Path(id): Path<String>,
    body: std::result::Result<Json<AddMember>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let svc = &state.services;
    let Target {
        realm, ws, access, ..
    } = target(&state, &subject, &id).await?;
    if access != Access::Owner {
        return Err(ApiError::forbidden("only the owner may invite members"));
    }
    let member = match (req.user_id, req.username) {
        (Some(uid), _) => svc.workspaces.user(&realm, &uid).await?,
        (None, Some(name)) => svc.workspaces.user_by_username(&realm, &name).await?,
        (None, None) => return Err(ApiError::bad_request("userId or username is required")),
    }
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "User not found".into()))?;
    svc.workspaces.add_member(&ws, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/machine/token/{wsid}`: the caller's machine token (Che's MachineTokenDto).
#[utoipa::path(operation_id = "workspace_machine_token", get, path = "/api/machine/token/{wsid}", tag = "workspaces",
    summary = "The caller's machine token for a running workspace",
    params(("wsid" = String, Path, description = "Workspace id")),
    security(("bearer" = [])),
    responses((status = 200, body = MachineTokenAnswer), Errors))]
pub async fn machine_token(
    State(state): State<AppState>,
    subject: Subject,
    Path(wsid): Path<String>,
) -> Result<Json<MachineTokenAnswer>> {
    let svc = &state.services;
    let Target {
        realm, user, ws, ..
    } = target(&state, &subject, &wsid).await?;
    if ws.status != WorkspaceStatus::Running {
        return Err(ApiError::conflict("the workspace is not running"));
    }
    let token = svc.workspaces.machine_token(&realm, &ws, &user).await?;
    Ok(Json(MachineTokenAnswer {
        machine_token: token,
        workspace_id: ws.id,
        user_id: user.id,
    }))
}

/// `GET /api/workspace/{id}/env` (Tessera): the environment a workspace agent
/// needs, for the caller — what `tessera workspace env` prints.
#[utoipa::path(operation_id = "workspace_env", get, path = "/api/workspace/{key}/env", tag = "workspaces",
    summary = "A running workspace's agent environment (`CHE_*` variables)",
    params(("key" = String, Path, description = "Workspace id, or `namespace/name` URL-encoded")),
    security(("bearer" = [])),
    responses((status = 200, body = BTreeMap<String, String>), Errors))]
pub async fn env(
    State(state): State<AppState>,
    subject: Subject,
    Path(id): Path<String>,
) -> Result<Json<BTreeMap<&'static str, String>>> {
    let svc = &state.services;
    let (realm, user) = caller(svc, &state.settings.default_realm, &subject).await?;
    // The key is an id or `namespace/name`.
    let ws = match id.split_once('/') {
        Some((namespace, name)) => {
            svc.workspaces
                .workspace_by_name(&realm, namespace, name)
                .await?
        }
        None => svc.workspaces.workspace(&realm, &id).await?,
    }
    .ok_or_else(ApiError::not_found)?;
    access(svc, &subject, &ws)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if ws.status != WorkspaceStatus::Running {
        return Err(ApiError::conflict("the workspace is not running"));
    }
    let token = svc.workspaces.machine_token(&realm, &ws, &user).await?;
    Ok(Json(BTreeMap::from([
        ("CHE_MACHINE_AUTH_SIGNATURE__ALGORITHM", "RSA".to_string()),
        (
            "CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY",
            svc.workspaces.machine_public_key(&realm).await?,
        ),
        ("CHE_WORKSPACE_ID", ws.id.clone()),
        ("CHE_MACHINE_TOKEN", token),
    ])))
}
