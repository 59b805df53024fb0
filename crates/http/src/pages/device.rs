//! The device verification page (RFC 8628 §3.3): a signed-in person enters
//! (or confirms) the code their device shows, sees which application asks,
//! and allows or denies it.

use super::login::{browser, login_page, submit_login, Login, LoginForm};
use super::{
    csrf, csrf_ok, error_page, oauth_error_page, realm_title, MessagePage, Page, PageForm,
    PageRealm, EXPIRED_FORM,
};
use crate::extract::Meta;
use crate::AppState;
use askama::Template;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use tessera_core::scope::ScopeSet;
use tessera_core::Realm;
use tessera_oauth::browser::device::{
    format_user_code, normalize_user_code, DeviceLookup, PendingDevice,
};
use tessera_oauth::browser::{Intent, SignedIn};
use tessera_oauth::Services;

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    realm_title: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    action: &'a str,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage<'a> {
    realm_title: &'a str,
    username: &'a str,
    app_name: &'a str,
    user_code: &'a str,
    scopes: Vec<String>,
    action: &'a str,
    csrf: &'a str,
}

#[derive(Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

fn lookup_message(why: DeviceLookup) -> &'static str {
    match why {
        DeviceLookup::Unknown => {
            "That code is not valid. Check the code your device shows and try again."
        }
        DeviceLookup::Expired => "That code has expired. Start again on your device.",
        DeviceLookup::AlreadyDecided => "That code has already been used.",
    }
}

struct Ctx<'a> {
    svc: &'a Services,
    realm: &'a Realm,
    headers: &'a HeaderMap,
    action: &'a str,
    /// The browser's address: user-code guesses are limited per address.
    address: Option<&'a str>,
}

impl Ctx<'_> {
    fn enter(&self, who: &SignedIn, error: Option<&str>) -> Page {
        let (csrf, set) = csrf(self.svc, self.realm, self.headers, Some(who));
        let title = realm_title(self.realm);
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        Page::render(
            status,
            &DevicePage {
                realm_title: &title,
                username: &who.user.username,
                error,
                action: self.action,
                csrf: &csrf,
            },
        )
        .with_cookies(set)
    }

    fn confirm(&self, who: &SignedIn, pending: &PendingDevice) -> Page {
        let (csrf, set) = csrf(self.svc, self.realm, self.headers, Some(who));
        let title = realm_title(self.realm);
        let app = pending
            .client
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| pending.client.client_id.clone());
        let scopes = ScopeSet::from_stored(&pending.code.scope)
            .to_param()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Page::render(
            StatusCode::OK,
            &ConfirmPage {
                realm_title: &title,
                username: &who.user.username,
                app_name: &app,
                user_code: &format_user_code(&pending.code.user_code),
                scopes,
                action: self.action,
                csrf: &csrf,
            },
        )
        .with_cookies(set)
    }

    fn login(&self, user_code: Option<String>) -> Page {
        login_page(
            self.svc,
            self.realm,
            self.headers,
            LoginForm {
                action: self.action,
                intent: Intent::Device { user_code },
                app_name: None,
                username: "",
                error: None,
                status: StatusCode::OK,
            },
        )
    }

    async fn lookup(&self, who: &SignedIn, user_code: &str) -> Page {
        match self
            .svc
            .browser
            .pending_device(self.realm, user_code, self.address)
            .await
        {
            Ok(Ok(p)) => self.confirm(who, &p),
            Ok(Err(why)) => self.enter(who, Some(lookup_message(why))),
            Err(e) => oauth_error_page(&realm_title(self.realm), &e),
        }
    }
}

pub async fn device_get(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<DeviceQuery>,
    Meta(meta): Meta,
    headers: HeaderMap,
) -> Page {
    let svc = &app.services;
    let ctx = Ctx {
        svc,
        realm: &realm,
        headers: &headers,
        action: uri.path(),
        address: meta.ip.as_deref(),
    };
    let who = match browser(svc, &realm, &headers).await {
        Ok(Some(w)) => w,
        Ok(None) => return ctx.login(q.user_code.as_deref().and_then(normalize_user_code)),
        Err(p) => return p,
    };
    match q.user_code.as_deref().filter(|c| !c.is_empty()) {
        Some(code) => ctx.lookup(&who, code).await,
        None => ctx.enter(&who, None),
    }
}

pub async fn device_post(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    OriginalUri(uri): OriginalUri,
    Meta(meta): Meta,
    form: PageForm,
) -> Page {
    let svc = &app.services;
    let title = realm_title(&realm);
    let ctx = Ctx {
        svc,
        realm: &realm,
        headers: &form.headers,
        action: uri.path(),
        address: meta.ip.as_deref(),
    };
    if form.params.get("login_state").is_some() {
        let is_device = |i: &Intent| matches!(i, Intent::Device { .. });
        return match submit_login(svc, &realm, &form, &meta, is_device).await {
            Login::Done {
                cookies,
                intent: Intent::Device { user_code },
                ..
            } => {
                let to = match user_code {
                    Some(c) => format!("{}?user_code={}", uri.path(), format_user_code(&c)),
                    None => uri.path().to_string(),
                };
                Page::redirect(to).with_cookies(cookies).see_other()
            }
            Login::Done { .. } => error_page(StatusCode::BAD_REQUEST, &title, EXPIRED_FORM),
            Login::Retry(retry) => retry.page(svc, &realm, &form.headers, uri.path(), None),
            Login::Page(p) => p,
        };
    }
    let who = match browser(svc, &realm, &form.headers).await {
        Ok(Some(w)) => w,
        Ok(None) => return ctx.login(None),
        Err(p) => return p,
    };
    if !csrf_ok(svc, &realm, &form.headers, &form.params, Some(&who)) {
        return error_page(StatusCode::BAD_REQUEST, &title, EXPIRED_FORM);
    }
    let user_code = form.params.get("user_code").unwrap_or("");
    let approve = match form.params.get("action") {
        Some("approve") => true,
        Some("deny") => false,
        _ => return ctx.lookup(&who, user_code).await,
    };
    match svc
        .browser
        .decide_device(&realm, user_code, approve, &who, meta.ip.as_deref())
        .await
    {
        Ok(Ok(pending)) => {
            let app = pending
                .client
                .name
                .clone()
                .unwrap_or(pending.client.client_id.clone());
            let (heading, message) = if approve {
                ("Device connected", format!("{app} is now signed in. You can close this window and return to your device."))
            } else {
                (
                    "Request denied",
                    format!("{app} was not given access. You can close this window."),
                )
            };
            Page::render(
                StatusCode::OK,
                &MessagePage {
                    realm_title: &title,
                    heading,
                    message: &message,
                    is_error: false,
                    link: None,
                },
            )
        }
        Ok(Err(why)) => ctx.enter(&who, Some(lookup_message(why))),
        Err(e) => oauth_error_page(&title, &e),
    }
}
