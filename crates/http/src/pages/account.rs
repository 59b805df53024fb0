//! The account page (profile, sessions and app connections with sign-out,
//! change password) for the signed-in browser, and the same sessions as JSON
//! under `/account/sessions` for a bearer token.

use super::login::{browser, login_page, submit_login, Login, LoginForm};
use super::{
    clear_sso_cookies, csrf, csrf_ok, error_page, oauth_error_page, realm_title, MessagePage, Page,
    PageForm, PageRealm, EXPIRED_FORM,
};
use crate::error::{OAuthErrorBody, OAuthReject};
use crate::extract::{bearer, Meta};
use crate::AppState;
use askama::Template;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tessera_core::{OAuthError, OAuthErrorCode, Realm, Secret};
use tessera_oauth::browser::account::AccountSession;
use tessera_oauth::browser::{Intent, SignedIn};
use tessera_oauth::Services;

/// One row of the sessions table, every field ready to show.
struct Row {
    id: String,
    client_id: String,
    what: String,
    device: String,
    ip: String,
    user_agent: String,
    started: String,
    last_used: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    realm_title: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    username: &'a str,
    email: &'a str,
    full_name: &'a str,
    sessions: Vec<Row>,
    providers: Vec<ProviderRow>,
    action: &'a str,
    csrf: &'a str,
}

/// A configured upstream provider on the account page.
struct ProviderRow {
    name: String,
    display_name: String,
    /// "as {subject} since {date}" when connected.
    connected: Option<String>,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    done: Option<String>,
}

/// `2026-11-22 14:35 UTC` from milliseconds since the epoch.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn row(s: AccountSession) -> Row {
    let what = match (s.kind, &s.client_name) {
        ("browser", _) => "Browser sign-in".to_string(),
        (_, Some(name)) => name.clone(),
        _ => "Application".to_string(),
    };
    let device = match (&s.device_id, &s.context_name) {
        (Some(d), Some(c)) => format!("{d} ({c})"),
        (Some(d), None) => d.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => "—".to_string(),
    };
    Row {
        id: s.id,
        client_id: s.client_id.unwrap_or_default(),
        what,
        device,
        ip: s.ip_address.unwrap_or_else(|| "—".into()),
        user_agent: s.user_agent.unwrap_or_else(|| "—".into()),
        started: format_time(s.started),
        last_used: format_time(s.last_access),
        current: s.current,
    }
}

fn notice_for(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "signed-out" => Some("The session was signed out."),
        "password" => Some("Your password was changed."),
        "disconnected" => Some("The account was disconnected."),
        _ => None,
    }
}

async fn show(
    app: &AppState,
    realm: &Realm,
    headers: &HeaderMap,
    action: &str,
    who: &SignedIn,
    notice: Option<&str>,
    error: Option<&str>,
) -> Page {
    let svc = &app.services;
    let title = realm_title(realm);
    let connected = match app.connect.connections(&who.user.id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "provider connections unavailable");
            Vec::new()
        }
    };
    let mut providers = Vec::new();
    let mut origins = Vec::new();
    for p in app.connect.providers().await {
        origins.extend(
            p.authorize_endpoint
                .as_deref()
                .and_then(tessera_connect::config::origin_of),
        );
        let c = connected.iter().find(|c| c.provider == p.name);
        providers.push(ProviderRow {
            connected: c.map(|c| format!("as {} since {}", c.subject, format_time(c.connected_at))),
            name: p.name,
            display_name: p.display_name,
        });
    }
    let sessions = match svc
        .browser
        .account_sessions(realm, &who.user.id, Some(&who.sso.id))
        .await
    {
        Ok(s) => s.into_iter().map(row).collect(),
        Err(e) => return oauth_error_page(&title, &e),
    };
    let (csrf, set) = csrf(svc, realm, headers, Some(who));
    let u = &who.user;
    let page = Page::render(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &AccountPage {
            realm_title: &title,
            notice,
            error,
            username: &u.username,
            email: u.email.as_deref().unwrap_or("—"),
            full_name: &u.full_name().unwrap_or_else(|| "—".into()),
            sessions,
            providers,
            action,
            csrf: &csrf,
        },
    )
    .with_cookies(set);
    // "Connect" posts here and is redirected to the provider, which the
    // browser checks against `form-action` too.
    origins
        .into_iter()
        .fold(page, |page, o| page.allow_form_action(Some(o)))
}

/// The login page, coming back to `action` (a page of the signed-in account).
pub(super) fn login(svc: &Services, realm: &Realm, headers: &HeaderMap, action: &str) -> Page {
    login_page(
        svc,
        realm,
        headers,
        LoginForm {
            action,
            intent: Intent::Account,
            app_name: None,
            username: "",
            error: None,
            status: StatusCode::OK,
        },
    )
}

pub async fn account_get(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<AccountQuery>,
    headers: HeaderMap,
) -> Page {
    let svc = &app.services;
    match browser(svc, &realm, &headers).await {
        Ok(Some(who)) => {
            show(
                &app,
                &realm,
                &headers,
                uri.path(),
                &who,
                notice_for(q.done.as_deref()),
                None,
            )
            .await
        }
        Ok(None) => login(svc, &realm, &headers, uri.path()),
        Err(p) => p,
    }
}

pub async fn account_post(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    OriginalUri(uri): OriginalUri,
    Meta(meta): Meta,
    form: PageForm,
) -> Page {
    let svc = &app.services;
    let title = realm_title(&realm);
    let path = uri.path();
    if form.params.get("login_state").is_some() {
        let is_account = |i: &Intent| matches!(i, Intent::Account);
        return match submit_login(svc, &realm, &form, &meta, is_account).await {
            Login::Done {
                cookies,
                intent: Intent::Account,
                ..
            } => Page::redirect(path.to_string())
                .with_cookies(cookies)
                .see_other(),
            Login::Done { .. } => error_page(StatusCode::BAD_REQUEST, &title, EXPIRED_FORM),
            Login::Retry(retry) => retry.page(svc, &realm, &form.headers, path, None),
            Login::Page(p) => p,
        };
    }
    let who = match browser(svc, &realm, &form.headers).await {
        Ok(Some(w)) => w,
        Ok(None) => return login(svc, &realm, &form.headers, path),
        Err(p) => return p,
    };
    if !csrf_ok(svc, &realm, &form.headers, &form.params, Some(&who)) {
        return error_page(StatusCode::BAD_REQUEST, &title, EXPIRED_FORM);
    }
    let p = &form.params;
    match p.get("action") {
        Some("sign-out") => {
            let id = p.get("session").unwrap_or("");
            match svc.browser.end_account_session(&realm, &who.user.id, id).await {
                Ok(true) if id == who.sso.id => Page::redirect(path.to_string())
                    .with_cookies(clear_sso_cookies(svc, &realm))
                    .see_other(),
                Ok(true) => Page::redirect(format!("{path}?done=signed-out")).see_other(),
                Ok(false) => {
                    show(&app, &realm, &form.headers, path, &who, None,
                        Some("That session has already ended.")).await
                }
                Err(e) => oauth_error_page(&title, &e),
            }
        }
        Some("sign-out-everywhere") => match svc.sessions.end_user_sessions(&realm, &who.user.id).await {
            Ok(_) => Page::render(
                StatusCode::OK,
                &MessagePage {
                    realm_title: &title,
                    heading: "Signed out everywhere",
                    message: "Every browser and application signed in to your account has been signed out.",
                    is_error: false,
                    link: Some((path.to_string(), "Sign in again")),
                },
            )
            .with_cookies(clear_sso_cookies(svc, &realm)),
            Err(e) => oauth_error_page(&title, &e),
        },
        Some("change-password") => {
            let current = Secret::new(p.get("current_password").unwrap_or("").to_string());
            let new = Secret::new(p.get("new_password").unwrap_or("").to_string());
            if p.get("confirm_password") != Some(new.expose().as_str()) {
                return show(&app, &realm, &form.headers, path, &who, None,
                    Some("The new passwords do not match.")).await;
            }
            let keep = p.get("sign_out_others").map(|_| who.sso.id.as_str());
            match svc.browser.change_password(&realm, &who.user, &current, &new, keep).await {
                Ok(()) => Page::redirect(format!("{path}?done=password")).see_other(),
                Err(e) => {
                    let msg = match e.code {
                        OAuthErrorCode::InvalidUserCredentials => "The current password is not correct.".to_string(),
                        OAuthErrorCode::InvalidRequest | OAuthErrorCode::TooManyRequests => e.description.clone(),
                        _ => return oauth_error_page(&title, &e),
                    };
                    show(&app, &realm, &form.headers, path, &who, None, Some(&msg)).await
                }
            }
        }
        Some("connect-provider") => {
            let start = tessera_connect::Start::Connect {
                realm: realm.clone(),
                user_id: who.user.id.clone(),
            };
            match app.connect.start(p.get("provider").unwrap_or(""), start).await {
                Ok(started) => crate::connect::to_provider(&app, started).see_other(),
                Err(e) => error_page(
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                    &title,
                    &e.to_string(),
                ),
            }
        }
        Some("disconnect-provider") => {
            match app.connect.disconnect(&who.user.id, p.get("provider").unwrap_or("")).await {
                Ok(()) => Page::redirect(format!("{path}?done=disconnected")).see_other(),
                Err(e) => show(&app, &realm, &form.headers, path, &who, None, Some(&e.to_string())).await,
            }
        }
        _ => error_page(StatusCode::BAD_REQUEST, &title, "Unknown action."),
    }
}

/// The caller of the JSON API: a live user access token of this realm.
pub(crate) async fn api_caller(
    svc: &Services,
    realm: &str,
    headers: &HeaderMap,
) -> Result<(Realm, String, Option<String>), OAuthError> {
    let realm = svc.realms.realm(realm).await?;
    let token = bearer(headers).ok_or_else(|| OAuthError::invalid_token("Missing bearer token"))?;
    let (claims, session) = svc.verifier.verify_live_access_token(&realm, token).await?;
    if session.is_none() {
        return Err(OAuthError::invalid_token(
            "The token does not belong to a user session",
        ));
    }
    Ok((realm, claims.sub, claims.sid))
}

/// `GET /realms/{realm}/account/sessions`.
#[utoipa::path(get, path = "/realms/{realm}/account/sessions", tag = "account",
    summary = "The token's user's sessions: signed-in browsers and app connections",
    params(("realm" = String, Path, description = "Realm name")), security(("bearer" = [])),
    responses((status = 200, body = Vec<AccountSession>), (status = 401, description = "`invalid_token`: no, an invalid, or a non-session token", body = OAuthErrorBody), (status = 404, description = "No such realm or session", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn api_sessions(
    State(app): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<AccountSession>>, OAuthReject> {
    let svc = &app.services;
    let (realm, user, sid) = api_caller(svc, &realm, &headers).await?;
    Ok(Json(
        svc.browser
            .account_sessions(&realm, &user, sid.as_deref())
            .await?,
    ))
}

/// `DELETE /realms/{realm}/account/sessions/{id}`.
#[utoipa::path(delete, path = "/realms/{realm}/account/sessions/{id}", tag = "account",
    summary = "End one of the user's sessions",
    params(("realm" = String, Path, description = "Realm name"), ("id" = String, Path, description = "Session id")), security(("bearer" = [])),
    responses((status = 204, description = "Ended"), (status = 401, description = "`invalid_token`: no, an invalid, or a non-session token", body = OAuthErrorBody), (status = 404, description = "No such realm or session", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn api_end_one(
    State(app): State<AppState>,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, OAuthReject> {
    let svc = &app.services;
    let (realm, user, _) = api_caller(svc, &realm, &headers).await?;
    if svc.browser.end_account_session(&realm, &user, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(OAuthError::not_found("No such session").into())
    }
}

/// The account API's (JSON) part of the OpenAPI document; the account
/// page itself is HTML.
#[derive(utoipa::OpenApi)]
#[openapi(paths(api_sessions, api_end_one, api_end_all))]
pub(crate) struct Api;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndAllQuery {
    /// Also end the session this token belongs to.
    #[serde(default, deserialize_with = "crate::extract::lenient_bool")]
    current: bool,
}

/// `DELETE /realms/{realm}/account/sessions`: every other session, and the
/// caller's own too with `?current=true` (Keycloak's account API).
#[utoipa::path(delete, path = "/realms/{realm}/account/sessions", tag = "account",
    summary = "End the user's other sessions (all of them with `current=true`)",
    params(("realm" = String, Path, description = "Realm name"), EndAllQuery), security(("bearer" = [])),
    responses((status = 204, description = "Ended"), (status = 401, description = "`invalid_token`: no, an invalid, or a non-session token", body = OAuthErrorBody), (status = 404, description = "No such realm or session", body = OAuthErrorBody), (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
pub async fn api_end_all(
    State(app): State<AppState>,
    Path(realm): Path<String>,
    Query(q): Query<EndAllQuery>,
    headers: HeaderMap,
) -> Result<Response, OAuthReject> {
    let svc = &app.services;
    let (realm, user, sid) = api_caller(svc, &realm, &headers).await?;
    let own_sso = match &sid {
        Some(s) => svc.browser.session(s).await?.and_then(|s| s.sso_session_id),
        None => None,
    };
    for s in svc.browser.account_sessions(&realm, &user, None).await? {
        let own = Some(&s.id) == sid.as_ref() || Some(&s.id) == own_sso.as_ref();
        if q.current || !own {
            svc.browser
                .end_account_session(&realm, &user, &s.id)
                .await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_795_000_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
