//! The authorization endpoint and the login form every page shares. A login
//! form posts back to the page that showed it, carrying the sealed intent
//! (which request, or which page) and the CSRF token.

use super::{
    cookie, csrf, csrf_ok, error_page, oauth_error_page, realm_title, script_nonce,
    sso_cookie_name, sso_cookies, Page, PageForm, PageRealm, EXPIRED_FORM,
};
use crate::extract::Meta;
use crate::AppState;
use askama::Template;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use tessera_core::{OAuthError, OAuthErrorCode, Realm, Secret};
use tessera_oauth::browser::authorize::origin_of;
use tessera_oauth::browser::{AuthorizeError, Intent, Redirect, ResponseMode, SignedIn};
use tessera_oauth::data::ClientMeta;
use tessera_oauth::{Params, Services};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    realm_title: &'a str,
    app_name: Option<&'a str>,
    error: Option<&'a str>,
    action: &'a str,
    csrf: &'a str,
    login_state: &'a str,
    username: &'a str,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    realm_title: &'a str,
    action: &'a str,
    fields: &'a [(String, String)],
    script_nonce: &'a str,
}

/// What the login form needs to show.
pub(super) struct LoginForm<'a> {
    pub action: &'a str,
    pub intent: Intent,
    pub app_name: Option<String>,
    pub username: &'a str,
    pub error: Option<&'a str>,
    pub status: StatusCode,
}

/// Renders the login form for `intent`.
pub(super) fn login_page(
    svc: &Services,
    realm: &Realm,
    headers: &HeaderMap,
    form: LoginForm<'_>,
) -> Page {
    let (csrf_token, set_cookie) = csrf(svc, realm, headers, None);
    let sealed = svc.browser.seal_intent(realm, &form.intent);
    let title = realm_title(realm);
    // The form posts here, and the answer may redirect to the client:
    // browsers apply form-action to that redirect too.
    let redirect_origin = match &form.intent {
        Intent::Authorize(req) => origin_of(&req.redirect_uri),
        _ => None,
    };
    Page::render(
        form.status,
        &LoginPage {
            realm_title: &title,
            app_name: form.app_name.as_deref(),
            error: form.error,
            action: form.action,
            csrf: &csrf_token,
            login_state: &sealed,
            username: form.username,
        },
    )
    .allow_form_action(redirect_origin)
    .with_cookies(set_cookie)
}

/// The outcome of a submitted login form.
pub(super) enum Login {
    /// Signed in: continue with the intent, setting these cookies.
    Done {
        signed_in: Box<SignedIn>,
        cookies: Vec<String>,
        intent: Intent,
    },
    /// Show the form again with an error.
    Retry(Retry),
    /// Show this (error) page.
    Page(Page),
}

/// A failed attempt: the form is shown again with this error.
pub(super) struct Retry {
    intent: Intent,
    username: String,
    error: String,
    status: StatusCode,
}

impl Retry {
    pub(super) fn intent(&self) -> &Intent {
        &self.intent
    }

    /// The form again (`app_name` names the client that asked, if any).
    pub(super) fn page(
        self,
        svc: &Services,
        realm: &Realm,
        headers: &HeaderMap,
        action: &str,
        app_name: Option<String>,
    ) -> Page {
        login_page(
            svc,
            realm,
            headers,
            LoginForm {
                action,
                intent: self.intent,
                app_name,
                username: &self.username,
                error: Some(&self.error),
                status: self.status,
            },
        )
    }
}

pub(super) const BAD_LOGIN: &str = "Invalid username or password.";

/// Checks a submitted login form: CSRF, the sealed intent, then the
/// password. Every wrong-credentials case gets the same message.
pub(super) async fn submit_login(
    svc: &Services,
    realm: &Realm,
    form: &PageForm,
    meta: &ClientMeta,
    for_this_page: fn(&Intent) -> bool,
) -> Login {
    let title = realm_title(realm);
    if !csrf_ok(svc, realm, &form.headers, &form.params, None) {
        return Login::Page(error_page(StatusCode::BAD_REQUEST, &title, EXPIRED_FORM));
    }
    let Some(intent) = form
        .params
        .get("login_state")
        .and_then(|s| svc.browser.open_intent(realm, s))
        .filter(for_this_page)
    else {
        return Login::Page(error_page(
            StatusCode::BAD_REQUEST,
            &title,
            "This sign-in page has expired. Go back to the application and start again.",
        ));
    };
    let username = form.params.get("username").unwrap_or("");
    let again = |error: &str, status: StatusCode| {
        Login::Retry(Retry {
            intent: intent.clone(),
            username: username.chars().take(255).collect(),
            error: error.to_string(),
            status,
        })
    };
    let password = Secret::new(form.params.get("password").unwrap_or("").to_string());
    if username.is_empty() || password.expose().is_empty() {
        return again(BAD_LOGIN, StatusCode::UNAUTHORIZED);
    }
    let user = match svc
        .browser
        .check_password(realm, username, &password, meta.ip.as_deref())
        .await
    {
        Ok(u) => u,
        Err(e) if e.code == OAuthErrorCode::InvalidUserCredentials => {
            return again(BAD_LOGIN, StatusCode::UNAUTHORIZED)
        }
        Err(e) if e.code == OAuthErrorCode::TooManyRequests => {
            let msg = format!(
                "Too many failed attempts. Try again in {} seconds.",
                e.retry_after_secs.unwrap_or(60)
            );
            return again(&msg, StatusCode::TOO_MANY_REQUESTS);
        }
        Err(e) => return Login::Page(oauth_error_page(&title, &e)),
    };
    if user.password_temporary {
        return again(
            "Your password was set as temporary: ask an administrator for a new one, or sign in with the CLI to change it.",
            StatusCode::FORBIDDEN,
        );
    }
    let previous = cookie(&form.headers, &sso_cookie_name(svc));
    match svc
        .browser
        .start_sso_session(realm, &user, meta, previous)
        .await
    {
        Ok((sso, secret)) => Login::Done {
            cookies: sso_cookies(svc, realm, &secret),
            signed_in: Box::new(SignedIn { sso, user }),
            intent,
        },
        Err(e) => Login::Page(oauth_error_page(&title, &e)),
    }
}

/// The browser's sign-in, if any.
pub(super) async fn browser(
    svc: &Services,
    realm: &Realm,
    headers: &HeaderMap,
) -> Result<Option<SignedIn>, Page> {
    svc.browser
        .signed_in(realm, cookie(headers, &sso_cookie_name(svc)))
        .await
        .map_err(|e| oauth_error_page(&realm_title(realm), &e))
}

/// Sends the response to the client: a redirect, or an auto-submitted form.
fn respond(realm: &Realm, r: Redirect, cookies: Vec<String>) -> Page {
    match r.mode {
        ResponseMode::Query | ResponseMode::Fragment => {
            Page::redirect(r.location()).with_cookies(cookies)
        }
        ResponseMode::FormPost => {
            let nonce = script_nonce();
            let title = realm_title(realm);
            Page::render(
                StatusCode::OK,
                &FormPostPage {
                    realm_title: &title,
                    action: &r.redirect_uri,
                    fields: &r.params,
                    script_nonce: &nonce,
                },
            )
            .allow_form_action(r.origin())
            .with_script_nonce(nonce)
            .with_cookies(cookies)
        }
    }
}

fn app_name_of(client: &tessera_core::Client) -> String {
    client
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| client.client_id.clone())
}

pub async fn authorize_get(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Page {
    let svc = &app.services;
    let pairs: Result<Vec<(String, String)>, _> =
        serde_urlencoded::from_str(uri.query().unwrap_or(""));
    let params = match pairs.ok().map(Params::from_pairs) {
        Some(Ok(p)) => p,
        // Our own words: the parser's message would repeat parameter names.
        Some(Err(_)) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &realm_title(&realm),
                "The request repeats a parameter or has too many.",
            )
        }
        None => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &realm_title(&realm),
                "The request could not be read.",
            )
        }
    };
    authorize(svc, &realm, &params, &headers, uri.path()).await
}

pub async fn authorize_post(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    OriginalUri(uri): OriginalUri,
    Meta(meta): Meta,
    form: PageForm,
) -> Page {
    let svc = &app.services;
    if form.params.get("login_state").is_none() {
        // OIDC Core §3.1.2.1: the request itself may come as a form POST.
        return authorize(svc, &realm, &form.params, &form.headers, uri.path()).await;
    }
    let is_authorize = |i: &Intent| matches!(i, Intent::Authorize(_));
    let (signed_in, cookies, intent) =
        match submit_login(svc, &realm, &form, &meta, is_authorize).await {
            Login::Done {
                signed_in,
                cookies,
                intent,
            } => (signed_in, cookies, intent),
            Login::Retry(retry) => {
                let app_name = match retry.intent() {
                    Intent::Authorize(req) => svc
                        .browser
                        .client(&realm, &req.client_id)
                        .await
                        .ok()
                        .flatten()
                        .map(|c| app_name_of(&c)),
                    _ => None,
                };
                return retry.page(svc, &realm, &form.headers, uri.path(), app_name);
            }
            Login::Page(p) => return p,
        };
    let Intent::Authorize(req) = intent else {
        return error_page(StatusCode::BAD_REQUEST, &realm_title(&realm), EXPIRED_FORM);
    };
    let client = match svc.browser.recheck_authorize(&realm, &req).await {
        Ok(c) => c,
        Err(e) => return authorize_error(&realm, e),
    };
    match svc
        .browser
        .issue_code(&realm, &client, &req, &signed_in)
        .await
    {
        Ok(r) => respond(&realm, r, cookies),
        Err(e) => oauth_error_page(&realm_title(&realm), &e),
    }
}

fn authorize_error(realm: &Realm, e: AuthorizeError) -> Page {
    let title = realm_title(realm);
    match e {
        AuthorizeError::Page(msg) => error_page(StatusCode::BAD_REQUEST, &title, &msg),
        AuthorizeError::Redirect(r) => respond(realm, r, Vec::new()),
        AuthorizeError::Server(e) => oauth_error_page(&title, &e),
    }
}

async fn authorize(
    svc: &Services,
    realm: &Realm,
    params: &Params,
    headers: &HeaderMap,
    action: &str,
) -> Page {
    let (client, req) = match svc.browser.authorize_request(realm, params).await {
        Ok(v) => v,
        Err(e) => return authorize_error(realm, e),
    };
    let signed_in = match browser(svc, realm, headers).await {
        Ok(s) => s,
        Err(p) => return p,
    };
    if let Some(s) = signed_in
        .as_ref()
        .filter(|s| svc.browser.sso_satisfies(&req, s))
    {
        return match svc.browser.issue_code(realm, &client, &req, s).await {
            Ok(r) => respond(realm, r, Vec::new()),
            Err(e) => oauth_error_page(&realm_title(realm), &e),
        };
    }
    if req.no_prompt {
        let e = OAuthError::new(OAuthErrorCode::LoginRequired, "The user is not signed in");
        let r = svc.browser.error_redirect(
            realm,
            &req.redirect_uri,
            req.response_mode,
            req.state.as_deref(),
            &e,
        );
        return respond(realm, r, Vec::new());
    }
    let username = req.login_hint.clone().unwrap_or_default();
    login_page(
        svc,
        realm,
        headers,
        LoginForm {
            action,
            intent: Intent::Authorize(req),
            app_name: Some(app_name_of(&client)),
            username: &username,
            error: None,
            status: StatusCode::OK,
        },
    )
}
