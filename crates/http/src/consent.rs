//! Verida's storage-node authentication API, JSON in and out with Verida's
//! names and shapes: `/auth/{generateAuthJwt, authenticate, connect,
//! regenerateRefreshToken, invalidateDeviceId, isTokenValid}` act in the
//! default realm, `/realms/{realm}/consent/...` in the named one. Errors are
//! `{status: "fail", message}`. Browsers call these from any dApp's origin,
//! so they answer CORS with `*` (no cookies are involved).
//!
//! `GET /auth/session` is the storage node's own API in miniature: it takes a
//! consent access token through the verification layer and describes the app
//! connection behind it.

use crate::extract::{read_body, Meta};
use crate::workspaces::DefaultRealm;
use crate::{AppState, HttpSettings};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tessera_core::{OAuthErrorCode, Realm};
use tessera_oauth::consent::{AuthJwt, AuthenticateRequest, ConsentError};
use tessera_oauth::Services;
use tessera_verify::{Accept, Policy, Subject, TokenKind, VerifyLayer};
use tower_http::cors::{Any, CorsLayer};
use utoipa::{PartialSchema, ToSchema};

/// The operations, by Verida's names.
fn operations() -> Router<AppState> {
    Router::new()
        .route("/generateAuthJwt", post(generate_auth_jwt))
        .route("/authenticate", post(authenticate))
        .route("/connect", post(connect))
        .route("/regenerateRefreshToken", post(regenerate))
        .route("/invalidateDeviceId", post(invalidate_device))
        .route("/isTokenValid", post(is_token_valid))
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(std::time::Duration::from_secs(3600))
}

/// `/realms/{realm}/consent/*`, to be served at the root and under `/auth`.
pub fn realm_router() -> Router<AppState> {
    Router::new()
        .nest("/realms/{realm}/consent", operations())
        .layer(cors())
}

/// `/auth/*` for the default realm, and `/auth/session`.
pub fn default_realm_router(state: &AppState) -> Router<AppState> {
    let realm = DefaultRealm {
        svc: state.services.clone(),
        name: state.settings.default_realm.clone(),
    };
    let verifier = Arc::new(
        crate::workspaces::verifier_for(&realm)
            .consent_tokens()
            .leeway(5),
    );
    let session = Router::new()
        .route("/auth/session", get(session))
        .route_layer(VerifyLayer::new(
            verifier,
            Policy {
                accept: Accept::Consent,
                ..Policy::default()
            },
        ));
    Router::new()
        .nest("/auth", operations())
        .merge(session)
        .layer(cors())
}

/// The consent API's part of the OpenAPI document: each operation at
/// `/auth/{op}` (the default realm) and, the same operation with a realm
/// parameter, at `/realms/{realm}/consent/{op}`.
pub(crate) fn api() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::Required;
    use utoipa::OpenApi;

    #[derive(OpenApi)]
    #[openapi(
        paths(
            generate_auth_jwt,
            authenticate,
            connect,
            regenerate,
            invalidate_device,
            is_token_valid,
            session,
        ),
        components(schemas(ConsentFailed))
    )]
    struct Api;

    let mut doc = Api::openapi();
    let realm = ParameterBuilder::new()
        .name("realm")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("Realm name"))
        .schema(Some(String::schema()))
        .build();
    let in_realm: Vec<_> = doc
        .paths
        .paths
        .iter()
        .filter(|(path, _)| path.as_str() != "/auth/session")
        .filter_map(|(path, item)| {
            let op = path.strip_prefix("/auth/")?;
            let mut item = item.clone();
            let post = item.post.as_mut()?;
            post.parameters
                .get_or_insert_with(Vec::new)
                .push(realm.clone());
            post.operation_id = post
                .operation_id
                .as_ref()
                .map(|id| format!("{id}_in_realm"));
            Some((format!("/realms/{{realm}}/consent/{op}"), item))
        })
        .collect();
    doc.paths.paths.extend(in_realm);
    doc
}

/// Which realm a consent call acts in: the one in the path, else the default.
struct ConsentRealm(Realm);

impl axum::extract::FromRequestParts<AppState> for ConsentRealm {
    type Rejection = ConsentReject;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let named =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .ok()
                .and_then(|Path(p)| p.get("realm").cloned());
        let name = named.unwrap_or_else(|| state.settings.default_realm.clone());
        state
            .services
            .realms
            .realm(&name)
            .await
            .map(Self)
            .map_err(|e| ConsentError::Server(e).into())
    }
}

/// A JSON body; anything unreadable is a 400 in Verida's shape.
struct Body<T>(T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ConsentReject;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let json_or_unset = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json_or_unset {
            return Err(ConsentReject::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ));
        }
        let bytes = read_body(body, state.settings.max_body_bytes)
            .await
            .map_err(|too_large| {
                if too_large {
                    ConsentReject::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
                } else {
                    ConsentReject::bad_request("Could not read the request body")
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ConsentReject::bad_request(&format!("Invalid request: {e}")))
    }
}

/// `{status: "fail", message}` with the status code that fits.
#[derive(Debug)]
pub struct ConsentReject {
    status: StatusCode,
    message: String,
}

impl ConsentReject {
    fn bad_request(msg: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    fn new(status: StatusCode, msg: &str) -> Self {
        Self {
            status,
            message: msg.to_string(),
        }
    }
}

impl From<ConsentError> for ConsentReject {
    fn from(e: ConsentError) -> Self {
        match e {
            ConsentError::BadRequest(m) => Self::new(StatusCode::BAD_REQUEST, &m),
            ConsentError::Unauthorized(m) => Self::new(StatusCode::UNAUTHORIZED, &m),
            ConsentError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, &m),
            ConsentError::Server(e) => {
                let status = StatusCode::from_u16(e.code.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if e.code == OAuthErrorCode::TemporarilyUnavailable {
                    tracing::warn!(error = ?e, "consent request: temporarily unavailable");
                    Self::new(status, "Temporarily unavailable, try again shortly")
                } else if status.is_server_error() {
                    // Detail goes to the log, never to the caller.
                    tracing::error!(error = ?e, "consent request failed");
                    Self::new(status, "Internal error")
                } else {
                    Self::new(status, &e.description)
                }
            }
        }
    }
}

impl IntoResponse for ConsentReject {
    fn into_response(self) -> Response {
        let Self { status, message } = self;
        if status.is_client_error() {
            tracing::debug!(%status, %message, "consent request refused");
        }
        let body = ConsentFailed {
            status: Fail::Fail,
            message: Some(message),
        };
        no_store((status, Json(body)).into_response())
    }
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn success(body: impl Serialize) -> Response {
    no_store(Json(body).into_response())
}

/// `status` of every successful answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Success {
    Success,
}

/// `status` of every failed answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Fail {
    Fail,
}

/// Every error, in Verida's shape (`isTokenValid`'s 401 has no message).
#[derive(Serialize, ToSchema)]
struct ConsentFailed {
    status: Fail,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// The consent API's error responses, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Errors {
    /// Invalid input (`message` says why).
    #[response(status = 400)]
    BadRequest(ConsentFailed),
    /// The signature, token or session is not valid.
    #[response(status = 401)]
    Unauthorized(ConsentFailed),
    /// Not allowed for this DID, context or origin.
    #[response(status = 403)]
    Forbidden(ConsentFailed),
    /// The body is not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ConsentFailed),
    /// The database is unavailable; `Retry-After` says when to retry.
    #[response(status = 503)]
    Unavailable(ConsentFailed),
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct GenerateReq {
    did: String,
    context_name: String,
}

#[utoipa::path(post, path = "/auth/generateAuthJwt", tag = "consent",
    summary = "A challenge for the DID to sign",
    request_body = GenerateReq,
    responses((status = 200, body = AuthJwtAnswer), Errors))]
async fn generate_auth_jwt(
    State(svc): State<Services>,
    ConsentRealm(realm): ConsentRealm,
    Body(req): Body<GenerateReq>,
) -> Result<Response, ConsentReject> {
    let jwt = svc
        .consent
        .generate_auth_jwt(&realm, &req.did, &req.context_name)
        .await?;
    Ok(success(AuthJwtAnswer {
        status: Success::Success,
        auth_jwt: jwt,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthenticateReq {
    auth_jwt: String,
    did: String,
    context_name: String,
    signature: String,
    device_id: String,
    /// The requesting app's origin, as the Vault saw it.
    #[serde(default)]
    origin: Option<String>,
}

#[utoipa::path(post, path = "/auth/authenticate", tag = "consent",
    summary = "Exchange the signed challenge for a refresh and an access token",
    request_body = AuthenticateReq,
    responses((status = 200, body = Authenticated), Errors))]
async fn authenticate(
    State(svc): State<Services>,
    ConsentRealm(realm): ConsentRealm,
    Meta(meta): Meta,
    headers: HeaderMap,
    Body(req): Body<AuthenticateReq>,
) -> Result<Response, ConsentReject> {
    let origin_header = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let out = svc
        .consent
        .consent_authenticate(
            &realm,
            AuthenticateRequest {
                auth_jwt: &req.auth_jwt,
                did: &req.did,
                context_name: &req.context_name,
                signature: &req.signature,
                device_id: &req.device_id,
                origin: req.origin.as_deref(),
                origin_header,
            },
            &meta,
        )
        .await?;
    Ok(success(Authenticated {
        status: Success::Success,
        refresh_token: out.refresh_token,
        access_token: out.access_token,
        host: out.host,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConnectReq {
    refresh_token: String,
    did: String,
    context_name: String,
}

#[utoipa::path(post, path = "/auth/connect", tag = "consent",
    summary = "A fresh access token for a refresh token",
    request_body = ConnectReq,
    responses((status = 200, body = Connected), Errors))]
async fn connect(
    State(svc): State<Services>,
    ConsentRealm(realm): ConsentRealm,
    Meta(meta): Meta,
    Body(req): Body<ConnectReq>,
) -> Result<Response, ConsentReject> {
    let (access, host) = svc
        .consent
        .consent_connect(
            &realm,
            &req.refresh_token,
            &req.did,
            &req.context_name,
            &meta,
        )
        .await?;
    Ok(success(Connected {
        status: Success::Success,
        access_token: access,
        host,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RegenerateReq {
    refresh_token: String,
    #[serde(default)]
    did: Option<String>,
    context_name: String,
}

#[utoipa::path(post, path = "/auth/regenerateRefreshToken", tag = "consent",
    summary = "Rotate a refresh token",
    request_body = RegenerateReq,
    responses((status = 200, body = Regenerated), Errors))]
async fn regenerate(
    State(svc): State<Services>,
    ConsentRealm(realm): ConsentRealm,
    Meta(meta): Meta,
    Body(req): Body<RegenerateReq>,
) -> Result<Response, ConsentReject> {
    let refresh = svc
        .consent
        .consent_regenerate(
            &realm,
            &req.refresh_token,
            req.did.as_deref(),
            &req.context_name,
            &meta,
        )
        .await?;
    Ok(success(Regenerated {
        status: Success::Success,
        refresh_token: refresh,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct InvalidateReq {
    did: String,
    context_name: String,
    device_id: String,
    signature: String,
}

#[utoipa::path(post, path = "/auth/invalidateDeviceId", tag = "consent",
    summary = "End a device's sessions (signed by the DID)",
    request_body = InvalidateReq,
    responses((status = 200, body = Invalidated), Errors))]
async fn invalidate_device(
    State(svc): State<Services>,
    ConsentRealm(realm): ConsentRealm,
    Body(req): Body<InvalidateReq>,
) -> Result<Response, ConsentReject> {
    let n = svc
        .consent
        .consent_invalidate_device(
            &realm,
            &req.did,
            &req.context_name,
            &req.device_id,
            &req.signature,
        )
        .await?;
    Ok(success(Invalidated {
        status: Success::Success,
        revoked: n,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct IsValidReq {
    refresh_token: String,
    context_name: String,
}

#[utoipa::path(post, path = "/auth/isTokenValid", tag = "consent",
    summary = "Whether a refresh token is valid, and until when",
    request_body = IsValidReq,
    responses((status = 200, body = Valid), Errors))]
async fn is_token_valid(
    State(svc): State<Services>,
    ConsentRealm(realm): ConsentRealm,
    Body(req): Body<IsValidReq>,
) -> Result<Response, ConsentReject> {
    match svc
        .consent
        .consent_token_expiry(&realm, &req.refresh_token, &req.context_name)
        .await
    {
        Ok(expires) => Ok(success(Valid {
            status: Success::Success,
            expires,
        })),
        // Verida answers a bare `fail` for any token that is not valid.
        Err(ConsentError::Unauthorized(_)) | Err(ConsentError::Forbidden(_)) => Ok(no_store(
            (
                StatusCode::UNAUTHORIZED,
                Json(ConsentFailed {
                    status: Fail::Fail,
                    message: None,
                }),
            )
                .into_response(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The app connection behind a consent access token, if its session is live.
#[utoipa::path(get, path = "/auth/session", tag = "consent",
    summary = "The app connection behind a consent access token (default realm only)",
    security(("bearer" = [])),
    responses((status = 200, body = SessionAnswer), Errors))]
async fn session(
    State(svc): State<Services>,
    State(settings): State<Arc<HttpSettings>>,
    Extension(subject): Extension<Subject>,
) -> Result<Response, ConsentReject> {
    let TokenKind::Consent {
        session,
        did,
        context_name,
    } = &subject.kind
    else {
        return Err(ConsentReject::new(
            StatusCode::UNAUTHORIZED,
            "Not a consent token",
        ));
    };
    let realm = svc
        .realms
        .realm(&settings.default_realm)
        .await
        .map_err(ConsentError::Server)?;
    let live = svc
        .consent
        .active_session(&realm, session)
        .await
        .map_err(ConsentError::Server)?
        .ok_or_else(|| ConsentReject::new(StatusCode::UNAUTHORIZED, "Session has ended"))?;
    Ok(success(SessionAnswer {
        status: Success::Success,
        username: subject.id.clone(),
        did: did.clone(),
        context_name: context_name.clone(),
        device_id: live.device_id,
        origin: live.origin,
        session_id: live.id,
        expires: live.expires_at / 1000,
    }))
}

/// `generateAuthJwt`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthJwtAnswer {
    status: Success,
    auth_jwt: AuthJwt,
}

/// `authenticate`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Authenticated {
    status: Success,
    refresh_token: String,
    access_token: String,
    /// The storage node the tokens are for.
    host: String,
}

/// `connect`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Connected {
    status: Success,
    access_token: String,
    host: String,
}

/// `regenerateRefreshToken`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Regenerated {
    status: Success,
    refresh_token: String,
}

/// `invalidateDeviceId`'s answer.
#[derive(Serialize, ToSchema)]
struct Invalidated {
    status: Success,
    /// How many sessions ended.
    revoked: usize,
}

/// `isTokenValid`'s answer.
#[derive(Serialize, ToSchema)]
struct Valid {
    status: Success,
    /// When the refresh token expires, seconds since the epoch.
    expires: i64,
}

/// `GET /auth/session`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    status: Success,
    username: String,
    did: String,
    context_name: String,
    device_id: Option<String>,
    origin: Option<String>,
    session_id: String,
    /// Seconds since the epoch.
    expires: i64,
}
