//! Upstream providers over HTTP: CodeStream's `/web/provider-auth`,
//! `/no-auth/provider-token` and `/no-auth/check-signup`, the account API
//! for connections, Che's `/api/oauth*`, and the relay that forwards
//! provider-initiated calls to another environment. Browser endpoints answer
//! with pages (never a redirect on error); APIs with JSON errors.

use crate::error::{OAuthErrorBody, OAuthReject};
use crate::extract::{bearer, read_body, Meta};
use crate::pages::{cookie, error_page, MessagePage, Page};
use crate::workspaces::DefaultRealm;
use crate::AppState;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tessera_connect::{CallbackQuery, ConnectError, Landing, SignupPoll, Start, Started};
use tessera_connect::{ConnectionInfo, SignedUp};
use tessera_verify::{Accept, Policy, Subject, VerifyLayer};
use utoipa::ToSchema;

pub fn router(state: &AppState) -> Router<AppState> {
    let realm = DefaultRealm {
        svc: state.services.clone(),
        name: state.settings.default_realm.clone(),
    };
    let verifier = crate::workspaces::verifier(&realm);
    let layer = |query_token| {
        VerifyLayer::new(
            verifier.clone(),
            Policy {
                query_token,
                accept: Accept::Users,
                required_role: None,
                required_scope: None,
                provision: Some(crate::workspaces::provision(&realm)),
            },
        )
    };
    // Che allows `?token=` where a header is impossible (a browser opening
    // the authenticate URL), on reads only.
    let che_reads = Router::new()
        .route("/api/oauth/authenticate", get(che_authenticate))
        .route("/api/oauth/token", get(che_token))
        .route_layer(layer(true));
    let che_changes = Router::new()
        .route("/api/oauth/token", axum::routing::delete(che_disconnect))
        .route_layer(layer(false));
    Router::new()
        .route(
            "/web/provider-auth/{provider}",
            get(provider_auth).post(provider_link),
        )
        .route("/web/provider-signup", axum::routing::post(signup_confirm))
        .route("/web/provider-connected/{provider}", get(connected_page))
        .route("/no-auth/provider-token/{provider}", get(provider_token))
        .route("/no-auth/check-signup", get(check_signup))
        .route("/api/oauth", get(che_providers))
        .route("/api/oauth/callback", get(che_callback))
        .route("/relay/{environment}/{*rest}", any(relay))
        .merge(che_reads)
        .merge(che_changes)
}

/// The account API's routes (under `/realms/{realm}` and `/auth/realms/{realm}`).
pub fn account_router() -> Router<AppState> {
    Router::new()
        .route("/realms/{realm}/account/providers", get(account_providers))
        .route(
            "/realms/{realm}/account/providers/{provider}",
            axum::routing::delete(account_disconnect),
        )
}

const TITLE: &str = "Tessera";

/// 302 to the provider, setting the cookie that binds the callback to
/// this browser (`/`-wide: callbacks come back on two paths).
pub(crate) fn to_provider(app: &AppState, started: Started) -> Page {
    let secure = if app.services.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        started.cookie_name, started.cookie_value, started.max_age_secs
    );
    Page::redirect(started.url.to_string()).with_cookies([cookie])
}

fn page_for(e: &ConnectError) -> Page {
    if let ConnectError::Internal(detail) = e {
        tracing::error!(error = %detail, "provider request failed");
    } else if let ConnectError::StoreUnavailable(detail) = e {
        tracing::warn!(error = %detail, "provider request: database unavailable");
    } else {
        tracing::info!(error = e.code(), "provider request refused");
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_page(status, TITLE, &e.to_string())
}

/// A JSON error: `{"error", "error_description"}` with the error's status.
pub struct ApiError(StatusCode, &'static str, String);

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        if let ConnectError::Internal(detail) = &e {
            tracing::error!(error = %detail, "provider request failed");
        } else if let ConnectError::StoreUnavailable(detail) = &e {
            tracing::warn!(error = %detail, "provider request: database unavailable");
        }
        Self(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            e.code(),
            e.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.1,
            error_description: self.2,
        };
        let mut res = (self.0, Json(body)).into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// Provider connect's JSON error responses (`{"error", "error_description"}`),
/// for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Errors {
    /// `invalid_request`, `unknown_provider`...
    #[response(status = 400)]
    BadRequest(OAuthErrorBody),
    /// `invalid_token`: no or an invalid bearer token.
    #[response(status = 401)]
    Unauthorized(OAuthErrorBody),
    /// `access_denied`.
    #[response(status = 403)]
    Forbidden(OAuthErrorBody),
    /// Unknown provider, or not connected.
    #[response(status = 404)]
    NotFound(OAuthErrorBody),
    /// The identity is taken, or the connection must be made again.
    #[response(status = 409)]
    Conflict(OAuthErrorBody),
    /// The provider is unavailable.
    #[response(status = 502)]
    BadGateway(OAuthErrorBody),
    /// The database is unavailable; `Retry-After` says when to retry.
    #[response(status = 503)]
    Unavailable(OAuthErrorBody),
}

/// Provider connect's and Che's OAuth API's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    provider_link,
    check_signup,
    account_providers,
    account_disconnect,
    che_providers,
    che_token,
    che_disconnect,
))]
pub(crate) struct Api;

#[derive(Deserialize)]
pub struct ProviderAuthQuery {
    #[serde(rename = "signupToken")]
    signup_token: Option<String>,
    client_id: Option<String>,
    access_token: Option<String>,
}

/// `GET /web/provider-auth/{provider}`: with `signupToken` + `client_id`,
/// a sign-up; otherwise the browser is sent to the confirmation page, where
/// its own sign-in (never anything in this URL) decides who connects.
async fn provider_auth(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    Query(q): Query<ProviderAuthQuery>,
) -> Page {
    if q.access_token.is_some() {
        return page_for(&ConnectError::InvalidRequest(
            "A link cannot say who is connecting. Open the link your application made (it asks with a POST), or connect from your account page.".into(),
        ));
    }
    let Some(token) = q.signup_token else {
        if let Err(e) = app.connect.provider(&provider) {
            return page_for(&e);
        }
        return Page::redirect(
            app.connect
                .confirm_page(&app.settings.default_realm, &provider),
        );
    };
    let Some(client_id) = q.client_id else {
        return page_for(&ConnectError::InvalidRequest(
            "A sign-up needs the client_id that will receive the tokens.".into(),
        ));
    };
    match app
        .connect
        .start(&provider, Start::Signup { token, client_id })
        .await
    {
        Ok(started) => to_provider(&app, started),
        Err(e) => page_for(&e),
    }
}

/// `POST /web/provider-auth/{provider}` with a bearer token of the default
/// realm: a one-time, short-lived link to open in a browser signed in as
/// the token's user (`{"url", "expires_in"}`).
#[utoipa::path(post, path = "/web/provider-auth/{provider}", tag = "connect",
    summary = "A one-time link that connects the token's user to a provider",
    params(("provider" = String, Path, description = "Provider name, as configured")), security(("bearer" = [])),
    responses((status = 200, body = ConnectLinkAnswer), Errors))]
async fn provider_link(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(token) = bearer(&headers) else {
        return Err(ConnectError::Unauthenticated.into());
    };
    let realm = app.connect.realm().await?;
    let user = match app
        .services
        .verifier
        .check_live_access_token(&realm, token)
        .await
    {
        Ok((claims, Some(_))) => claims.sub,
        Err(tessera_oauth::verify::Rejection::Unavailable(detail)) => {
            return Err(ConnectError::StoreUnavailable(detail).into())
        }
        Err(tessera_oauth::verify::Rejection::Internal(detail)) => {
            return Err(ConnectError::Internal(detail).into())
        }
        _ => return Err(ConnectError::Unauthenticated.into()),
    };
    let (url, expires_in) = app
        .connect
        .connect_link(&realm, &user, &provider, None)
        .await?;
    let mut res = Json(ConnectLinkAnswer { url, expires_in }).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /no-auth/provider-token/{provider}`: the provider's callback.
async fn provider_token(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    uri: OriginalUri,
    q: Query<CallbackQuery>,
    headers: HeaderMap,
) -> Page {
    callback(&app, Some(&provider), uri, q, &headers).await
}

/// `GET /api/oauth/callback`: Che's callback, same machinery.
async fn che_callback(
    State(app): State<AppState>,
    uri: OriginalUri,
    q: Query<CallbackQuery>,
    headers: HeaderMap,
) -> Page {
    callback(&app, None, uri, q, &headers).await
}

async fn callback(
    app: &AppState,
    provider: Option<&str>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<CallbackQuery>,
    headers: &HeaderMap,
) -> Page {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let jar = |name: &str| cookie(headers, name).map(str::to_string);
    land(app, app.connect.callback(provider, &q, path, &jar).await)
}

fn land(app: &AppState, outcome: Result<Landing, ConnectError>) -> Page {
    match outcome {
        Ok(Landing::Forward(url) | Landing::Redirect(url)) => Page::redirect(url),
        Ok(Landing::Connected { url, .. }) => Page::redirect(url),
        Ok(Landing::ConfirmSignup(c)) => {
            let success = app
                .connect
                .config
                .success_url
                .as_deref()
                .and_then(tessera_connect::config::origin_of);
            Page::render(
                StatusCode::OK,
                &SignupConfirmPage {
                    realm_title: TITLE,
                    app: &c.app,
                    provider: &c.provider,
                    username: &c.username,
                    email: c.email.as_deref(),
                    new_account: c.new_account,
                    user_code: &c.user_code,
                    flow: &c.flow,
                    csrf: &c.csrf,
                    action: "/web/provider-signup",
                },
            )
            // Signing in posts here and is redirected to the success page.
            .allow_form_action(success)
        }
        Ok(Landing::SignupCancelled) => Page::render(
            StatusCode::OK,
            &MessagePage {
                realm_title: TITLE,
                heading: "Sign-in cancelled",
                message: "Nothing was signed in. You can close this window.",
                is_error: false,
                link: None,
            },
        ),
        Err(e) => page_for(&e),
    }
}

#[derive(askama::Template)]
#[template(path = "signup_confirm.html")]
struct SignupConfirmPage<'a> {
    realm_title: &'a str,
    app: &'a str,
    provider: &'a str,
    username: &'a str,
    email: Option<&'a str>,
    new_account: bool,
    user_code: &'a str,
    flow: &'a str,
    csrf: &'a str,
    action: &'a str,
}

/// `POST /web/provider-signup`: the sign-up confirmation page's answer
/// (`flow`, `csrf`, `action=confirm|cancel`), from the browser that made
/// the round trip (its binding cookie).
async fn signup_confirm(State(app): State<AppState>, form: crate::pages::PageForm) -> Page {
    let p = &form.params;
    let approve = match p.get("action") {
        Some("confirm") => true,
        Some("cancel") => false,
        _ => return page_for(&ConnectError::InvalidRequest("Unknown action.".into())),
    };
    let jar = |name: &str| cookie(&form.headers, name).map(str::to_string);
    let outcome = app
        .connect
        .confirm_signup(
            p.get("flow").unwrap_or(""),
            p.get("csrf").unwrap_or(""),
            approve,
            &jar,
        )
        .await;
    // After a POST the browser GETs the success page; errors keep their status.
    let redirect = matches!(
        outcome,
        Ok(Landing::Connected { .. } | Landing::Redirect(_) | Landing::Forward(_))
    );
    let page = land(&app, outcome);
    if redirect {
        page.see_other()
    } else {
        page
    }
}

/// `GET /web/provider-connected/{provider}`: the default success page.
async fn connected_page(State(app): State<AppState>, Path(provider): Path<String>) -> Page {
    let name = match app.connect.provider(&provider) {
        Ok(p) => p.spec.display_name.clone(),
        Err(e) => return page_for(&e),
    };
    let message = format!(
        "Your {name} account is connected. You can close this window and return to your app."
    );
    Page::render(
        StatusCode::OK,
        &MessagePage {
            realm_title: TITLE,
            heading: "Connected",
            message: &message,
            is_error: false,
            link: None,
        },
    )
}

#[derive(Deserialize)]
pub struct CheckSignupQuery {
    token: Option<String>,
}

/// `GET /no-auth/check-signup?token=`: 202 `signup_pending` until the
/// callback completes, then once 200 with the user and tokens.
#[utoipa::path(get, path = "/no-auth/check-signup", tag = "connect",
    summary = "Poll a sign-up through a provider: 202 until confirmed, then once 200 with the user and tokens",
    params(("token" = String, Query, description = "The sign-up token the client chose")),
    responses(
        (status = 200, body = SignedUp),
        (status = 202, description = "Not confirmed yet; poll again", body = SignupPending),
        (status = 410, description = "`signup_used` or `expired_token`", body = OAuthErrorBody),
        Errors))]
async fn check_signup(
    State(app): State<AppState>,
    Query(q): Query<CheckSignupQuery>,
    Meta(meta): Meta,
) -> Result<Response, ApiError> {
    let Some(token) = q.token.filter(|t| !t.is_empty() && t.len() <= 200) else {
        return Err(ConnectError::InvalidRequest("token is required".into()).into());
    };
    let poll = match app.connect.check_signup(&token, &meta).await? {
        Ok(done) => {
            app.metrics.token_issued("signup");
            let mut res = Json(done).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(res);
        }
        Err(poll) => poll,
    };
    let (status, code, text) = match poll {
        SignupPoll::Pending { user_code } => {
            // The code the browser's confirmation page shows: the app shows
            // it too, so its user can tell their own sign-in from a phished one.
            let mut res = (
                StatusCode::ACCEPTED,
                Json(SignupPending {
                    error: "signup_pending",
                    error_description:
                        "Waiting for the sign-in to be confirmed in the browser; poll again.",
                    user_code,
                }),
            )
                .into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(res);
        }
        SignupPoll::NotFound => (
            StatusCode::NOT_FOUND,
            "signup_not_found",
            "No sign-up was started with this token.".to_string(),
        ),
        SignupPoll::Used => (
            StatusCode::GONE,
            "signup_used",
            "This sign-up token was already used.".to_string(),
        ),
        SignupPoll::Expired => (
            StatusCode::GONE,
            "expired_token",
            "The sign-up has expired.".to_string(),
        ),
        SignupPoll::Denied(error) => (
            StatusCode::FORBIDDEN,
            "access_denied",
            format!("The provider did not grant access ({error})."),
        ),
    };
    Err(ApiError(status, code, text))
}

/// `GET /realms/{realm}/account/providers`.
#[utoipa::path(get, path = "/realms/{realm}/account/providers", tag = "account",
    summary = "The token's user's provider connections (never the tokens)",
    params(("realm" = String, Path, description = "Realm name")), security(("bearer" = [])),
    responses((status = 200, body = Vec<ConnectionInfo>), Errors))]
async fn account_providers(
    State(app): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match crate::pages::account::api_caller(&app.services, &realm, &headers).await {
        Ok((_, user, _)) => user,
        Err(e) => return OAuthReject::from(e).into_response(),
    };
    match app.connect.connections(&user).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `DELETE /realms/{realm}/account/providers/{provider}`.
#[utoipa::path(delete, path = "/realms/{realm}/account/providers/{provider}", tag = "account",
    summary = "Disconnect a provider",
    params(("realm" = String, Path, description = "Realm name"), ("provider" = String, Path, description = "Provider name, as configured")), security(("bearer" = [])),
    responses((status = 204, description = "Disconnected"), Errors))]
async fn account_disconnect(
    State(app): State<AppState>,
    Path((realm, provider)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let user = match crate::pages::account::api_caller(&app.services, &realm, &headers).await {
        Ok((_, user, _)) => user,
        Err(e) => return OAuthReject::from(e).into_response(),
    };
    match app.connect.disconnect(&user, &provider).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /api/oauth`: the configured providers, as Che's
/// `OAuthAuthenticatorDescriptor`s.
#[utoipa::path(get, path = "/api/oauth", tag = "che",
    summary = "The configured providers, as Che's OAuthAuthenticatorDescriptors",
    responses((status = 200, body = Vec<CheAuthenticator>)))]
async fn che_providers(State(app): State<AppState>) -> Json<Vec<CheAuthenticator>> {
    let base = format!("{}/api/oauth/authenticate", app.services.config.public_url);
    let mut out = Vec::new();
    for p in app.connect.providers().await {
        out.push(CheAuthenticator {
            links: vec![CheLink {
                rel: "Authenticate URL",
                href: format!("{base}?oauth_provider={}", p.name),
                method: "GET",
                parameters: vec![
                    CheLinkParameter {
                        name: "oauth_provider",
                        default_value: Some(p.name.clone()),
                        required: true,
                        valid: vec![p.name.clone()],
                    },
                    CheLinkParameter {
                        name: "redirect_after_login",
                        default_value: None,
                        required: true,
                        valid: Vec::new(),
                    },
                ],
            }],
            name: p.name,
            display_name: p.display_name,
            endpoint_url: p.authorize_endpoint,
        });
    }
    Json(out)
}

/// Che's `OAuthAuthenticatorDescriptor`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheAuthenticator {
    name: String,
    display_name: String,
    endpoint_url: Option<String>,
    links: Vec<CheLink>,
}

/// Che's `Link`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheLink {
    rel: &'static str,
    href: String,
    method: &'static str,
    parameters: Vec<CheLinkParameter>,
}

/// Che's `LinkParameter`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheLinkParameter {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_value: Option<String>,
    required: bool,
    valid: Vec<String>,
}

/// `POST /web/provider-auth/{provider}`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectLinkAnswer {
    /// Open it in a browser signed in as the token's user.
    url: String,
    /// Seconds.
    expires_in: i64,
}

/// `GET /no-auth/check-signup`'s 202.
#[derive(Serialize, ToSchema)]
pub(crate) struct SignupPending {
    /// `signup_pending`.
    error: &'static str,
    error_description: &'static str,
    /// The code the browser's confirmation page shows.
    user_code: String,
}

/// Che's `OAuthToken`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheToken {
    token: String,
    /// Space-separated.
    scope: String,
}

#[derive(Deserialize)]
pub struct CheQuery {
    oauth_provider: Option<String>,
    redirect_after_login: Option<String>,
}

fn che_provider(q: &CheQuery) -> Result<String, ConnectError> {
    q.oauth_provider
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ConnectError::InvalidRequest("oauth_provider is required".into()))
}

/// `GET /api/oauth/authenticate?oauth_provider=&redirect_after_login=`:
/// Che's shape, Tessera's rule. The token (header, or `?token=` where a
/// browser opens the URL) only names who the link is for: the browser goes
/// on to the confirmation page, which needs it signed in as that user.
async fn che_authenticate(
    State(app): State<AppState>,
    subject: Subject,
    Query(q): Query<CheQuery>,
) -> Page {
    let provider = match che_provider(&q) {
        Ok(p) => p,
        Err(e) => return page_for(&e),
    };
    let Some(redirect_after_login) = q.redirect_after_login.filter(|r| !r.is_empty()) else {
        return page_for(&ConnectError::InvalidRequest(
            "redirect_after_login is required".into(),
        ));
    };
    let realm = match app.connect.realm().await {
        Ok(r) => r,
        Err(e) => return page_for(&e),
    };
    match app
        .connect
        .connect_link(&realm, &subject.id, &provider, Some(redirect_after_login))
        .await
    {
        Ok((url, _)) => Page::redirect(url),
        Err(e) => page_for(&e),
    }
}

/// `GET /api/oauth/token?oauth_provider=`: Che's `OAuthToken`.
#[utoipa::path(get, path = "/api/oauth/token", tag = "che",
    summary = "The user's current token at a provider (Che's OAuthToken), refreshed if needed",
    params(("oauth_provider" = String, Query, description = "Provider name"), ("token" = Option<String>, Query, description = "The access token, where no header can be sent")),
    security(("bearer" = [])),
    responses((status = 200, body = CheToken), Errors))]
async fn che_token(
    State(app): State<AppState>,
    subject: Subject,
    Query(q): Query<CheQuery>,
) -> Result<Response, ApiError> {
    let provider = che_provider(&q)?;
    let (token, scopes) = app.connect.current_token(&subject.id, &provider).await?;
    let mut res = Json(CheToken {
        token,
        scope: scopes.join(" "),
    })
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `DELETE /api/oauth/token?oauth_provider=`.
#[utoipa::path(delete, path = "/api/oauth/token", tag = "che",
    summary = "Disconnect the user from a provider",
    params(("oauth_provider" = String, Query, description = "Provider name")), security(("bearer" = [])),
    responses((status = 204, description = "Disconnected"), Errors))]
async fn che_disconnect(
    State(app): State<AppState>,
    subject: Subject,
    Query(q): Query<CheQuery>,
) -> Result<StatusCode, ApiError> {
    let provider = che_provider(&q)?;
    app.connect.disconnect(&subject.id, &provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a relayed request, so a relay never relays it again (no loops).
const RELAYED: &str = "x-tessera-relayed";

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus those the client library sets itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// Headers a relay drops: a browser's cookies are this deployment's, not the
/// target's (webhooks sign with their own headers), and forwarding claims
/// are not ours to pass on.
fn not_relayed(name: &HeaderName) -> bool {
    let n = name.as_str();
    hop_by_hop(name) || n == "cookie" || n == "forwarded" || n.starts_with("x-forwarded-")
}

/// The path after `/relay/{env}/`, as sent (still percent-encoded), if it
/// is safe to append to the environment's URL: no `.`/`..` segment in any
/// spelling and no second relay hop.
fn relay_path(raw: &str) -> Option<&str> {
    let rest = raw.strip_prefix("/relay/")?.split_once('/')?.1;
    let decoded: Vec<String> = rest
        .split('/')
        .map(|seg| {
            url::form_urlencoded::parse(format!("s={}", seg.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let dots = decoded.iter().any(|s| s == "." || s == "..");
    let nested = decoded
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("relay"));
    (!dots && !nested).then_some(rest)
}

/// `ANY /relay/{environment}/{*rest}`: forwards a provider-initiated call
/// (a webhook, Slack's interactive components) to the same path on a
/// configured environment, with its method, headers and body.
async fn relay(
    State(app): State<AppState>,
    Path((environment, _)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let Some(base) = app.connect.environment(&environment) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "unknown_environment",
            format!("No environment named {environment:?} is configured here."),
        ));
    };
    let (parts, body) = req.into_parts();
    let refuse = |why: &str| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("This request cannot be relayed: {why}."),
        )
    };
    if parts.headers.contains_key(RELAYED) {
        return Err(refuse("it was relayed already"));
    }
    let rest = relay_path(parts.uri.path()).ok_or_else(|| refuse("its path is not allowed"))?;
    let mut target = format!("{}/{rest}", base.trim_end_matches('/'));
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let limit = app.connect.config.relay_max_bytes;
    let body = read_body(body, limit).await.map_err(|too_large| {
        if too_large {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("Relayed bodies are limited to {limit} bytes."),
            )
        } else {
            ApiError(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "could not read the request body".into(),
            )
        }
    })?;
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::POST);
    let mut out = app
        .connect
        .http
        .request(method, &target)
        .header(RELAYED, app.connect.config.runtime_environment.as_str())
        .body(body);
    for (name, value) in &parts.headers {
        if !not_relayed(name) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let upstream = out.send().await.map_err(|e| {
        // Without the URL: its query may carry a webhook's secret.
        tracing::warn!(environment = %environment, error = %e.without_url(), "relay failed");
        ApiError(
            StatusCode::BAD_GATEWAY,
            "relay_failed",
            format!("Environment {environment:?} did not answer."),
        )
    })?;
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = Response::builder().status(status);
    for (name, value) in upstream.headers() {
        let name = HeaderName::from_bytes(name.as_str().as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_bytes(value.as_bytes())) {
            // The target's cookies would land on this deployment's origin.
            if !hop_by_hop(&name) && name != header::SET_COOKIE {
                res = res.header(name, value);
            }
        }
    }
    // Whatever the target answers, it is not this origin's page.
    res = res
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let bytes = upstream.bytes().await.map_err(|_| {
        ApiError(
            StatusCode::BAD_GATEWAY,
            "relay_failed",
            "The environment's answer was cut off.".into(),
        )
    })?;
    res.body(Body::from(bytes)).map_err(|_| {
        ApiError(
            StatusCode::BAD_GATEWAY,
            "relay_failed",
            "The environment's answer could not be passed on.".into(),
        )
    })
}
