//! Browser sign-in: the authorization endpoint with its login page, codes
//! and PKCE, SSO, device authorization, RP-initiated logout, the account
//! page and API, and the pages' security headers. Driven through the router
//! with a small cookie-keeping browser.

#[path = "../common/mod.rs"]
mod common;

mod account;
mod device;
mod login;
mod logout;

use account::*;
use device::*;
use login::*;
use logout::*;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const WEB_CB: &str = "http://127.0.0.1:9999/cb";
const AUTH: &str = "/realms/test/protocol/openid-connect/auth";
const DEVICE: &str = "/realms/test/device";
const ACCOUNT: &str = "/realms/test/account";
const LOGOUT: &str = "/realms/test/protocol/openid-connect/logout";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SVC_SECRET: &str = "svc-secret-0123456789abcdef";

/// A browser: a cookie jar (name, path) → value, sending what a path sees.
#[derive(Default)]
struct Browser {
    jar: HashMap<(String, String), String>,
}

/// What a page request returned.
struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> String {
        self.headers
            .get("location")
            .unwrap_or_else(|| panic!("no Location ({}): {}", self.status, self.html))
            .to_str()
            .expect("ascii")
            .to_string()
    }
    /// The value of the hidden (or text) input `name`.
    fn input(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in: {}", self.html))
            + marker.len();
        let end = self.html[start..].find('"').expect("closing quote") + start;
        self.html[start..end].to_string()
    }
    fn query(&self) -> HashMap<String, String> {
        let loc = url::Url::parse(&self.location()).expect("absolute location");
        loc.query_pairs().into_owned().collect()
    }
}

impl Browser {
    fn cookie_header(&self, path: &str) -> String {
        self.jar
            .iter()
            .filter(|((_, p), _)| path.starts_with(p.as_str()))
            .map(|((n, _), v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(
        &mut self,
        app: &TestApp,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Page {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("user-agent", "Mozilla/5.0 (tessera test browser)")
            .header("cookie", self.cookie_header(path));
        let body = match form {
            Some(pairs) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                Body::from(serde_urlencoded::to_string(pairs).expect("form"))
            }
            None => Body::empty(),
        };
        let r = app.send(req.body(body).expect("request")).await;
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().expect("ascii");
            let mut parts = v.split(';').map(str::trim);
            let (name, value) = parts
                .next()
                .and_then(|kv| kv.split_once('='))
                .expect("cookie");
            let mut cpath = "/".to_string();
            let mut delete = false;
            for attr in parts {
                if let Some(p) = attr.strip_prefix("Path=") {
                    cpath = p.to_string();
                }
                if attr == "Max-Age=0" {
                    delete = true;
                }
            }
            let key = (name.to_string(), cpath);
            if delete {
                self.jar.remove(&key);
            } else {
                self.jar.insert(key, value.to_string());
            }
        }
        let html = match &r.body {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        Page {
            status: r.status,
            headers: r.headers,
            html,
        }
    }

    async fn get(&mut self, app: &TestApp, path: &str) -> Page {
        self.send(app, Method::GET, path, None).await
    }

    async fn post(&mut self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(app, Method::POST, path, Some(form)).await
    }

    /// Submits the login form on `page` (which was served at `path`).
    async fn login(
        &mut self,
        app: &TestApp,
        path: &str,
        page: &Page,
        username: &str,
        password: &str,
    ) -> Page {
        assert_eq!(
            page.status,
            StatusCode::OK,
            "expected a login page: {}",
            page.html
        );
        let (csrf, state) = (page.input("csrf"), page.input("login_state"));
        self.post(
            app,
            path,
            &[
                ("csrf", &csrf),
                ("login_state", &state),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    fn signed_in(&self) -> bool {
        self.jar.keys().any(|(n, _)| n.ends_with("TESSERA_SSO"))
    }
}

fn auth_url(client: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("client_id", client),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("scope", "openid email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    format!(
        "{AUTH}?{}",
        serde_urlencoded::to_string(&pairs).expect("query")
    )
}

/// Adds the public client `web` (device grant on, post-logout URI, a
/// loopback URI without port), `plain` (public, no device grant) and `svc`
/// (confidential, standard flow).
async fn seed_clients(app: &TestApp) {
    let admin = app.admin_token().await;
    let r = app
        .json(
            Method::POST,
            "/admin/realms/test/clients",
            &admin,
            Some(json!({
            "clientId": "web", "name": "Web IDE", "publicClient": true,
                        "redirectUris": [WEB_CB, "https://app.example/cb", "http://localhost:3000/cb",
                             "http://127.0.0.1/callback"],
            "attributes": {"post.logout.redirect.uris": "https://app.example/bye##+",
                           "oauth2.device.authorization.grant.enabled": "true"}})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = app
        .json(
            Method::POST,
            "/admin/realms/test/clients",
            &admin,
            Some(json!({
            "clientId": "plain", "publicClient": true, "redirectUris": [WEB_CB]})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = app
        .json(Method::POST, "/admin/realms/test/clients", &admin, Some(json!({
            "clientId": "svc", "publicClient": false, "secret": SVC_SECRET, "redirectUris": [WEB_CB]})))
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
}

/// Signs in through the login page and returns the code response's query.
async fn code_flow(
    app: &TestApp,
    b: &mut Browser,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let url = auth_url("web", WEB_CB, extra);
    let page = b.get(app, &url).await;
    let done = if b.signed_in() && page.status == StatusCode::FOUND {
        page
    } else {
        b.login(app, AUTH, &page, "alice", ALICE_PASSWORD).await
    };
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.html);
    assert!(done.location().starts_with(WEB_CB), "{}", done.location());
    done.query()
}

async fn redeem(app: &TestApp, code: &str, verifier: Option<&str>, redirect: &str) -> Resp {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("client_id", "web"),
        ("code", code),
        ("redirect_uri", redirect),
    ];
    if let Some(v) = verifier {
        pairs.push(("code_verifier", v));
    }
    app.form(&TestApp::token_path("test"), &pairs).await
}

on_both_backends!(
    confidential_clients_and_foreign_redemptions,
    loopback_redirects_take_any_port_and_fragments_work,
    signing_in_again_renews_or_replaces_the_browser_session,
    device_approval_needs_this_browser_and_dies_with_sign_out,
    account_forms_need_csrf,
    code_login_with_pkce_issues_tokens_with_id_token,
    code_replay_revokes_what_it_issued,
    pkce_is_enforced,
    redirect_uri_must_match_exactly,
    bad_requests_go_back_to_the_client,
    sso_cookie_signs_a_second_client_in,
    login_failures_are_generic_and_forms_need_csrf,
    pages_send_security_headers,
    device_flow_end_to_end,
    device_denied_expired_and_refused,
    rp_logout_ends_the_sso_session_and_its_tokens,
    logout_without_hint_asks_first,
    account_page_lists_and_signs_out_sessions,
    account_password_change,
    account_api_with_a_bearer_token,
    discovery_advertises_browser_endpoints,
);

mod expiry {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn device_codes_expire_sqlite() {
        let app = app_with(Backend::Sqlite, |c| c.browser.device_code_ttl_secs = 1)
            .await
            .expect("app");
        device_codes_expire(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logout_after_the_browser_session_expired_still_ends_its_tokens() {
        let app = app_with(Backend::Sqlite, |c| c.browser.sso_session_max_secs = 1)
            .await
            .expect("app");
        seed_clients(&app).await;
        let mut b = Browser::default();
        let q = code_flow(&app, &mut b, &[]).await;
        let tokens = redeem(&app, &q["code"], Some(VERIFIER), WEB_CB).await;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let path = format!("{LOGOUT}?id_token_hint={}", tokens.str("id_token"));
        let page = b.get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        let r = app
            .form(
                &TestApp::token_path("test"),
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", "web"),
                    ("refresh_token", &tokens.str("refresh_token")),
                ],
            )
            .await;
        assert_eq!(r.error(), "invalid_grant");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cookies_are_secure_and_prefixed_over_https() {
        let app = app_with(Backend::Sqlite, |c| {
            c.public_url = "https://tessera.test".into()
        })
        .await
        .expect("app");
        seed_clients(&app).await;
        let mut b = Browser::default();
        let page = b.get(&app, &auth_url("web", WEB_CB, &[])).await;
        let set: Vec<String> = page
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").into())
            .collect();
        assert!(
            set.iter().any(|c| c.starts_with("__Host-TESSERA_CSRF=")
                && c.contains("; Path=/;")
                && c.contains("Secure")),
            "{set:?}"
        );
        let done = b.login(&app, AUTH, &page, "alice", ALICE_PASSWORD).await;
        assert_eq!(done.status, StatusCode::FOUND, "{}", done.html);
        let set: Vec<String> = done
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").into())
            .collect();
        assert!(
            set.iter().any(|c| c.starts_with("__Secure-TESSERA_SSO=")
                && c.contains("Secure")
                && c.contains("HttpOnly")),
            "{set:?}"
        );
        assert!(b
            .get(&app, &auth_url("web", WEB_CB, &[("prompt", "none")]))
            .await
            .query()
            .contains_key("code"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn codes_expire() {
        let app = app_with(Backend::Sqlite, |c| c.browser.code_ttl_secs = 1)
            .await
            .expect("app");
        seed_clients(&app).await;
        let mut b = Browser::default();
        let q = code_flow(&app, &mut b, &[]).await;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let r = redeem(&app, &q["code"], Some(VERIFIER), WEB_CB).await;
        assert_eq!(
            (r.error(), r.body["error_description"].as_str()),
            ("invalid_grant", Some("Code expired"))
        );
    }
}
