//! The logout endpoint. A form POST with `refresh_token` is Keycloak's
//! back-channel logout (client authenticated, JSON errors); anything else is
//! RP-initiated logout from a browser: with a valid `id_token_hint` the
//! browser is signed out at once, without one the user confirms first.

use super::login::browser;
use super::{
    clear_sso_cookies, csrf, csrf_ok, error_page, oauth_error_page, page_realm, realm_title,
    MessagePage, Page, PageForm, PageRealm, EXPIRED_FORM,
};
use crate::error::OAuthReject;
use crate::AppState;
use askama::Template;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::Realm;
use tessera_oauth::browser::SignedIn;
use tessera_oauth::{Params, Services};

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage<'a> {
    realm_title: &'a str,
    app_name: Option<&'a str>,
    action: &'a str,
    csrf: &'a str,
    fields: &'a [(String, String)],
}

/// Parameters carried from the confirmation page to its POST.
const CARRIED: &[&str] = &["post_logout_redirect_uri", "state", "client_id"];

pub async fn logout_get(
    State(app): State<AppState>,
    PageRealm(realm): PageRealm,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let svc = &app.services;
    let pairs: Result<Vec<(String, String)>, _> =
        serde_urlencoded::from_str(uri.query().unwrap_or(""));
    let params = match pairs.ok().map(Params::from_pairs) {
        Some(Ok(p)) => p,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &realm_title(&realm),
                "The sign-out request could not be read.",
            )
            .into_response()
        }
    };
    let who = match browser(svc, &realm, &headers).await {
        Ok(w) => w,
        Err(p) => return p.into_response(),
    };
    rp_logout(svc, &realm, &params, &headers, uri.path(), who, false)
        .await
        .into_response()
}

/// Documented as what it is for API clients, Keycloak's back-channel
/// logout; the same POST without `refresh_token` is the browser's
/// RP-initiated logout (an HTML page, not in the document).
#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/logout", tag = "oidc",
    summary = "Back-channel logout (Keycloak): end the session of a refresh token",
    params(("realm" = String, Path, description = "Realm name")), security((), ("client_basic" = [])),
    request_body(content = crate::oidc::TokenForm, content_type = "application/x-www-form-urlencoded",
        description = "`refresh_token`, and the client's authentication (HTTP Basic, or `client_id` with `client_secret` for a confidential client)"),
    responses((status = 204, description = "The session ended"), (status = 400, description = "RFC 6749 §5.2 error, e.g. `invalid_request`, `invalid_grant`", body = crate::error::OAuthErrorBody), (status = 401, description = "`invalid_client`", body = crate::error::OAuthErrorBody), (status = 404, description = "No such realm", body = crate::error::OAuthErrorBody)))]
pub async fn logout_post(
    State(app): State<AppState>,
    Path(realm): Path<String>,
    OriginalUri(uri): OriginalUri,
    form: PageForm,
) -> Response {
    let svc = &app.services;
    if form.params.get("refresh_token").is_some() {
        return back_channel(svc, &realm, &form).await;
    }
    let realm = match page_realm(svc, &realm).await {
        Ok(r) => r,
        Err(p) => return p.into_response(),
    };
    let confirmed = form.params.get("confirm").is_some();
    let who = match browser(svc, &realm, &form.headers).await {
        Ok(w) => w,
        Err(p) => return p.into_response(),
    };
    if confirmed && !csrf_ok(svc, &realm, &form.headers, &form.params, who.as_ref()) {
        return error_page(StatusCode::BAD_REQUEST, &realm_title(&realm), EXPIRED_FORM)
            .into_response();
    }
    rp_logout(
        svc,
        &realm,
        &form.params,
        &form.headers,
        uri.path(),
        who,
        confirmed,
    )
    .await
    .into_response()
}

/// Keycloak's logout with a refresh token: ends that session.
async fn back_channel(svc: &Services, realm: &str, form: &PageForm) -> Response {
    let run = async {
        let realm = svc.realms.realm(realm).await?;
        let authorization = form
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let client = svc
            .clients
            .calling_client(&realm, authorization, &form.params)
            .await?;
        let refresh_token = form.params.require("refresh_token")?;
        svc.tokens
            .logout_with_refresh_token(&realm, &client, refresh_token)
            .await
    };
    match run.await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => OAuthReject(e).into_response(),
    }
}

async fn rp_logout(
    svc: &Services,
    realm: &Realm,
    params: &Params,
    headers: &HeaderMap,
    action: &str,
    who: Option<SignedIn>,
    confirmed: bool,
) -> Page {
    let title = realm_title(realm);
    let req = match svc.browser.check_logout(realm, params).await {
        Ok(r) => r,
        Err(msg) => return error_page(StatusCode::BAD_REQUEST, &title, &msg),
    };
    if req.needs_confirmation() && !confirmed && who.is_some() {
        let (csrf, set) = csrf(svc, realm, headers, who.as_ref());
        let fields: Vec<(String, String)> = CARRIED
            .iter()
            .filter_map(|k| params.get(k).map(|v| (k.to_string(), v.to_string())))
            .collect();
        let redirect_origin = req
            .redirect
            .as_deref()
            .and_then(tessera_oauth::browser::authorize::origin_of);
        return Page::render(
            StatusCode::OK,
            &ConfirmPage {
                realm_title: &title,
                app_name: req.client_name.as_deref(),
                action,
                csrf: &csrf,
                fields: &fields,
            },
        )
        .allow_form_action(redirect_origin)
        .with_cookies(set);
    }
    let cookies = match svc.browser.rp_logout(&req, who.as_ref()).await {
        Ok(true) => clear_sso_cookies(svc, realm),
        Ok(false) => Vec::new(),
        Err(e) => return oauth_error_page(&title, &e),
    };
    match req.redirect {
        Some(to) => Page::redirect(to).with_cookies(cookies).see_other(),
        None => Page::render(
            StatusCode::OK,
            &MessagePage {
                realm_title: &title,
                heading: "You are signed out",
                message: "You have been signed out. You can close this window.",
                is_error: false,
                link: None,
            },
        )
        .with_cookies(cookies),
    }
}
