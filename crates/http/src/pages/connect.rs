//! The page where a signed-in browser confirms connecting an upstream
//! provider: `/realms/{realm}/account/connect/{provider}` (the default
//! realm). A URL says *what* to connect, never *who*: the account is the
//! browser's sign-in (the login page first if there is none). With
//! `?link=` (a one-time link made for an IDE's bearer token, or by Che's
//! `/api/oauth/authenticate`), the browser must be signed in as the user the
//! link was made for; anyone else gets a readable refusal. Nothing leaves
//! for the provider until the person presses Continue (a CSRF-checked POST).

use super::account::login;
use super::login::{browser, submit_login, Login};
use super::{
    csrf, csrf_ok, error_page, realm_title, MessagePage, Page, PageForm, PageRealm, EXPIRED_FORM,
};
use crate::extract::Meta;
use crate::AppState;
use askama::Template;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;
use tessera_connect::{ConnectError, ConnectLink};
use tessera_core::Realm;
use tessera_oauth::browser::{Intent, SignedIn};

#[derive(Template)]
#[template(path = "connect_confirm.html")]
struct ConfirmPage<'a> {
    realm_title: &'a str,
    provider: &'a str,
    username: &'a str,
    action: &'a str,
    csrf: &'a str,
}

#[derive(Deserialize)]
pub struct ConnectQuery {
    link: Option<String>,
}

fn refused(realm: &Realm, e: &ConnectError) -> Page {
    tracing::info!(error = e.code(), "provider connect refused");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_page(status, &realm_title(realm), &e.to_string())
}

/// The path and query the page was reached at (the form posts back there).
fn here(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string())
}

/// A 404 page unless `realm` is the one connections live in.
fn outside_connect_realm(app: &AppState, realm: &Realm) -> Option<Page> {
    (realm.name != app.settings.default_realm).then(|| {
        error_page(
            StatusCode::NOT_FOUND,
            &realm_title(realm),
            "Providers are connected in the default realm only.",
        )
    })
}

/// The link, checked against the provider, realm and signed-in user.
fn checked_link(
    app: &AppState,
    realm: &Realm,
    provider: &str,
    raw: Option<&str>,
    who: &SignedIn,
) -> Result<Option<ConnectLink>, ConnectError> {
    let Some(raw) = raw else { return Ok(None) };
    let link = app.connect.open_link(raw, realm, provider)?;
    if link.sub != who.user.id {
        return Err(ConnectError::OtherAccount);
    }
    Ok(Some(link))
}

pub async fn connect_get(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    Path((_, provider)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<ConnectQuery>,
    headers: HeaderMap,
) -> Page {
    if let Some(p) = outside_connect_realm(&app, &realm) {
        return p;
    }
    let display = match app.connect.provider(&provider) {
        Ok(p) => p.spec.display_name.clone(),
        Err(e) => return refused(&realm, &e),
    };
    let action = here(&uri);
    let who = match browser(&app.services, &realm, &headers).await {
        Ok(Some(w)) => w,
        Ok(None) => return login(&app.services, &realm, &headers, &action),
        Err(p) => return p,
    };
    if let Err(e) = checked_link(&app, &realm, &provider, q.link.as_deref(), &who) {
        return refused(&realm, &e);
    }
    let (csrf, set) = csrf(&app.services, &realm, &headers, Some(&who));
    let origin = app
        .connect
        .provider(&provider)
        .ok()
        .and_then(|p| p.known_authorize_endpoint())
        .and_then(|u| tessera_connect::config::origin_of(u.as_str()));
    Page::render(
        StatusCode::OK,
        &ConfirmPage {
            realm_title: &realm_title(&realm),
            provider: &display,
            username: &who.user.username,
            action: &action,
            csrf: &csrf,
        },
    )
    .with_cookies(set)
    // Continue posts here and is redirected to the provider.
    .allow_form_action(origin)
}

pub async fn connect_post(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    Path((_, provider)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<ConnectQuery>,
    Meta(meta): Meta,
    form: PageForm,
) -> Page {
    if let Some(p) = outside_connect_realm(&app, &realm) {
        return p;
    }
    let title = realm_title(&realm);
    let svc = &app.services;
    let action = here(&uri);
    if form.params.get("login_state").is_some() {
        let is_account = |i: &Intent| matches!(i, Intent::Account);
        return match submit_login(svc, &realm, &form, &meta, is_account).await {
            Login::Done {
                cookies,
                intent: Intent::Account,
                ..
            } => Page::redirect(action).with_cookies(cookies).see_other(),
            Login::Done { .. } => error_page(StatusCode::BAD_REQUEST, &title, EXPIRED_FORM),
            Login::Retry(retry) => retry.page(svc, &realm, &form.headers, &action, None),
            Login::Page(p) => p,
        };
    }
    let who = match browser(svc, &realm, &form.headers).await {
        Ok(Some(w)) => w,
        Ok(None) => return login(&app.services, &realm, &form.headers, &action),
        Err(p) => return p,
    };
    if !csrf_ok(svc, &realm, &form.headers, &form.params, Some(&who)) {
        return error_page(StatusCode::BAD_REQUEST, &title, EXPIRED_FORM);
    }
    let link = match checked_link(&app, &realm, &provider, q.link.as_deref(), &who) {
        Ok(l) => l,
        Err(e) => return refused(&realm, &e),
    };
    match form.params.get("action") {
        Some("connect") => {}
        Some("cancel") => {
            return Page::render(
                StatusCode::OK,
                &MessagePage {
                    realm_title: &title,
                    heading: "Nothing was connected",
                    message: "You can close this window.",
                    is_error: false,
                    link: None,
                },
            )
        }
        _ => return error_page(StatusCode::BAD_REQUEST, &title, "Unknown action."),
    }
    let started = match link {
        Some(link) => {
            app.connect
                .start_from_link(&realm, link, &who.user.id)
                .await
        }
        None => {
            let start = tessera_connect::Start::Connect {
                realm: realm.clone(),
                user_id: who.user.id.clone(),
            };
            app.connect.start(&provider, start).await
        }
    };
    match started {
        Ok(started) => crate::connect::to_provider(&app, started).see_other(),
        Err(e) => refused(&realm, &e),
    }
}
