//! The server-rendered web pages: login (authorization endpoint), device
//! verification, account and logout. Templates are askama (compiled, HTML
//! auto-escaped); every page is sent with a strict Content-Security-Policy
//! (no external assets, inline style allowed by hash only, scripts only on
//! the form_post page by nonce), `X-Frame-Options: DENY`, no caching and no
//! referrer. Every form carries a CSRF token bound to the browser's CSRF
//! cookie. Error pages show our own messages only, never raw input.

pub(crate) mod account;
mod connect;
mod device;
mod login;
pub(crate) mod logout;

use crate::extract::read_body;
use crate::AppState;
use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::collections::HashMap;
use std::sync::LazyLock;
use tessera_core::secret::random_token;
use tessera_core::{OAuthError, OAuthErrorCode, Realm};
use tessera_oauth::browser::SignedIn;
use tessera_oauth::{Params, Services};

/// The one stylesheet, inlined into every page.
pub const CSS: &str = include_str!("../../templates/tessera.css");

static CSS_HASH: LazyLock<String> = LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(CSS.as_bytes()))
    )
});

/// The browser's SSO cookie (path-scoped to the realm). Over https it is
/// `__Secure-TESSERA_SSO`, so no plain-http response can set it.
pub const SSO_COOKIE: &str = "TESSERA_SSO";
/// The browser's CSRF cookie; form tokens are MACs of its value. Over https
/// it is `__Host-TESSERA_CSRF`: host-only, so a sibling domain cannot plant one.
pub const CSRF_COOKIE: &str = "TESSERA_CSRF";

fn https(svc: &Services) -> bool {
    svc.config.public_url.starts_with("https://")
}

/// The SSO cookie's name on this deployment.
pub fn sso_cookie_name(svc: &Services) -> String {
    if https(svc) {
        format!("__Secure-{SSO_COOKIE}")
    } else {
        SSO_COOKIE.to_string()
    }
}

/// The CSRF cookie's name on this deployment.
pub fn csrf_cookie_name(svc: &Services) -> String {
    if https(svc) {
        format!("__Host-{CSRF_COOKIE}")
    } else {
        CSRF_COOKIE.to_string()
    }
}

pub fn router() -> Router<AppState> {
    let oidc = "/realms/{realm}/protocol/openid-connect";
    Router::new()
        .route(
            &format!("{oidc}/auth"),
            get(login::authorize_get).post(login::authorize_post),
        )
        .route(
            &format!("{oidc}/logout"),
            get(logout::logout_get).post(logout::logout_post),
        )
        .route(
            "/realms/{realm}/device",
            get(device::device_get).post(device::device_post),
        )
        .route(
            "/realms/{realm}/account",
            get(account::account_get).post(account::account_post),
        )
        .route(
            "/realms/{realm}/account/connect/{provider}",
            get(connect::connect_get).post(connect::connect_post),
        )
        .route(
            "/realms/{realm}/account/sessions",
            get(account::api_sessions).delete(account::api_end_all),
        )
        .route(
            "/realms/{realm}/account/sessions/{id}",
            delete(account::api_end_one),
        )
}

/// A rendered page (or a redirect) with the security headers and cookies.
pub struct Page {
    status: StatusCode,
    body: String,
    location: Option<String>,
    /// Origins besides our own that forms may submit to (and redirect to).
    form_action: Vec<String>,
    script_nonce: Option<String>,
    cookies: Vec<String>,
}

impl Page {
    pub fn html(status: StatusCode, body: String) -> Self {
        Self {
            status,
            body,
            location: None,
            form_action: Vec::new(),
            script_nonce: None,
            cookies: Vec::new(),
        }
    }

    pub fn redirect(location: String) -> Self {
        let mut p = Self::html(StatusCode::FOUND, String::new());
        p.location = Some(location);
        p
    }

    pub fn render(status: StatusCode, t: &impl Template) -> Self {
        match t.render() {
            Ok(body) => Self::html(status, body),
            Err(e) => {
                tracing::error!(error = %e, "page template failed");
                Self::html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!DOCTYPE html><title>Error</title><p>Something went wrong.</p>".into(),
                )
            }
        }
    }

    /// 303 instead of 302: after a form POST, the browser GETs the target.
    pub fn see_other(mut self) -> Self {
        self.status = StatusCode::SEE_OTHER;
        self
    }

    pub fn allow_form_action(mut self, origin: Option<String>) -> Self {
        self.form_action.extend(origin);
        self
    }

    pub fn with_script_nonce(mut self, nonce: String) -> Self {
        self.script_nonce = Some(nonce);
        self
    }

    pub fn with_cookies(mut self, cookies: impl IntoIterator<Item = String>) -> Self {
        self.cookies.extend(cookies);
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut csp = format!(
            "default-src 'none'; style-src {}; img-src 'self' data:; form-action 'self'",
            *CSS_HASH
        );
        for origin in &self.form_action {
            csp.push(' ');
            csp.push_str(origin);
        }
        csp.push_str("; frame-ancestors 'none'; base-uri 'none'");
        if let Some(nonce) = &self.script_nonce {
            csp.push_str(&format!("; script-src 'nonce-{nonce}'"));
        }
        let mut res = (self.status, self.body).into_response();
        let h = res.headers_mut();
        let set = |h: &mut HeaderMap, name, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        };
        set(h, header::CONTENT_TYPE, "text/html; charset=utf-8");
        set(h, header::CONTENT_SECURITY_POLICY, &csp);
        set(h, header::X_FRAME_OPTIONS, "DENY");
        set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        set(h, header::REFERRER_POLICY, "no-referrer");
        set(h, header::CACHE_CONTROL, "no-store");
        set(h, header::PRAGMA, "no-cache");
        if let Some(loc) = &self.location {
            set(h, header::LOCATION, loc);
        }
        for c in &self.cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        res
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub realm_title: &'a str,
    pub heading: &'a str,
    pub message: &'a str,
    pub is_error: bool,
    pub link: Option<(String, &'a str)>,
}

/// A readable error page. `message` is always our own text.
pub fn error_page(status: StatusCode, realm_title: &str, message: &str) -> Page {
    Page::render(
        status,
        &MessagePage {
            realm_title,
            heading: "We could not complete your request",
            message,
            is_error: true,
            link: None,
        },
    )
}

/// An `OAuthError` on a page: the description is ours (never the input).
pub fn oauth_error_page(realm_title: &str, e: &OAuthError) -> Page {
    if e.code == OAuthErrorCode::ServerError {
        tracing::error!(error = ?e, "page request failed");
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            realm_title,
            "Something went wrong on our side. Please try again.",
        );
    }
    if e.code == OAuthErrorCode::TemporarilyUnavailable {
        tracing::warn!(error = ?e, "page request: temporarily unavailable");
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            realm_title,
            "The service is temporarily unavailable. Please try again in a few seconds.",
        );
    }
    let status = match e.code {
        OAuthErrorCode::NotFound => StatusCode::NOT_FOUND,
        OAuthErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    };
    error_page(status, realm_title, &e.description)
}

/// The realm a page is for; unknown realms get a 404 page.
pub async fn page_realm(svc: &Services, name: &str) -> Result<Realm, Page> {
    svc.realms
        .realm(name)
        .await
        .map_err(|e| oauth_error_page("Tessera", &e))
}

/// The realm a page is for, from the `{realm}` of its path: an unknown or
/// disabled realm gets a 404 page before the handler runs.
pub struct PageRealm(pub Realm);

impl FromRequestParts<AppState> for PageRealm {
    type Rejection = Page;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Page> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, app)
            .await
            .map_err(|_| error_page(StatusCode::NOT_FOUND, "Tessera", "Realm does not exist"))?;
        let name = params.get("realm").map_or("", String::as_str);
        page_realm(&app.services, name).await.map(PageRealm)
    }
}

pub fn realm_title(realm: &Realm) -> String {
    realm
        .display_name
        .clone()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| realm.name.clone())
}

/// The value of a cookie in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn secure_attr(svc: &Services) -> &'static str {
    if https(svc) {
        "; Secure"
    } else {
        ""
    }
}

/// Paths a realm's pages live under (root and the legacy `/auth` prefix).
fn realm_paths(realm: &Realm) -> [String; 2] {
    let enc: String = url::form_urlencoded::byte_serialize(realm.name.as_bytes()).collect();
    let enc = enc.replace('+', "%20");
    [format!("/realms/{enc}/"), format!("/auth/realms/{enc}/")]
}

/// `Set-Cookie` values that sign this browser in to the realm.
pub fn sso_cookies(svc: &Services, realm: &Realm, secret: &str) -> Vec<String> {
    let secure = secure_attr(svc);
    realm_paths(realm)
        .iter()
        .map(|p| {
            format!(
                "{}={secret}; Path={p}; HttpOnly; SameSite=Lax{secure}",
                sso_cookie_name(svc)
            )
        })
        .collect()
}

/// `Set-Cookie` values that forget the browser's sign-in.
pub fn clear_sso_cookies(svc: &Services, realm: &Realm) -> Vec<String> {
    let secure = secure_attr(svc);
    realm_paths(realm)
        .iter()
        .map(|p| {
            format!(
                "{}=; Path={p}; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
                sso_cookie_name(svc)
            )
        })
        .collect()
}

/// This browser's CSRF token (bound to its sign-in on pages of a signed-in
/// browser), and the cookie to set when it had none.
pub fn csrf(
    svc: &Services,
    realm: &Realm,
    headers: &HeaderMap,
    who: Option<&SignedIn>,
) -> (String, Option<String>) {
    let name = csrf_cookie_name(svc);
    let sso = who.map(|w| w.sso.id.as_str());
    match cookie(headers, &name).filter(|c| !c.is_empty() && c.len() <= 64) {
        Some(c) => (svc.browser.csrf_token(realm, c, sso), None),
        None => {
            let value = random_token(16);
            let set = format!(
                "{name}={value}; Path=/; HttpOnly; SameSite=Lax{}",
                secure_attr(svc)
            );
            (svc.browser.csrf_token(realm, &value, sso), Some(set))
        }
    }
}

/// Whether a submitted form carries this browser's CSRF token.
pub fn csrf_ok(
    svc: &Services,
    realm: &Realm,
    headers: &HeaderMap,
    params: &Params,
    who: Option<&SignedIn>,
) -> bool {
    svc.browser.check_csrf(
        realm,
        cookie(headers, &csrf_cookie_name(svc)),
        who.map(|w| w.sso.id.as_str()),
        params.get("csrf"),
    )
}

pub const EXPIRED_FORM: &str =
    "This page has expired or was opened in another browser. Go back, reload the page and try again.";

/// A submitted page form: parsed like a protocol form, but a bad one gets a
/// page, not JSON.
pub struct PageForm {
    pub params: Params,
    pub headers: HeaderMap,
}

impl FromRequest<AppState> for PageForm {
    type Rejection = Page;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body): (_, Body) = req.into_parts();
        let form_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let bad = |m: &str| error_page(StatusCode::BAD_REQUEST, "Tessera", m);
        if !form_type {
            return Err(bad("The form was not sent as a form."));
        }
        let bytes = read_body(body, state.settings.max_body_bytes)
            .await
            .map_err(|_| bad("The form is too large."))?;
        let params = Params::parse(&bytes).map_err(|_| bad("The form could not be read."))?;
        Ok(Self {
            params,
            headers: parts.headers,
        })
    }
}

/// A fresh nonce for the form_post page's script.
pub fn script_nonce() -> String {
    random_token(16)
}

/// The public base of a realm's pages.
pub fn realm_base(svc: &Services, realm: &Realm) -> String {
    svc.realms.issuer(&realm.name)
}
