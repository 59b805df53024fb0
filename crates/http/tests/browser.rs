//! Browser sign-in: the authorization endpoint with its login page, codes
//! and PKCE, SSO, device authorization, RP-initiated logout, the account
//! page and API, and the pages' security headers. Driven through the router
//! with a small cookie-keeping browser.

mod common;

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

async fn code_login_with_pkce_issues_tokens_with_id_token(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let page = b.get(&app, &auth_url("web", WEB_CB, &[])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("Web IDE"), "the page names the client");
    let q = code_flow(&app, &mut b, &[]).await;
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], format!("{PUBLIC_URL}/realms/test"));
    let r = redeem(&app, &q["code"], Some(VERIFIER), WEB_CB).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = claims(&r.str("id_token"));
    let access = claims(&r.str("access_token"));
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["aud"], "web");
    assert_eq!(id["sid"], access["sid"]);
    assert!(id["auth_time"].as_i64().expect("auth_time") > 0);
    let digest = Sha256::digest(r.str("access_token").as_bytes());
    assert_eq!(id["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    assert_eq!(access["email"], "alice@example.test");
    // The access token works at userinfo, and the session is an app
    // connection with the browser's user agent on the SSO session.
    let info = app
        .get(
            "/realms/test/protocol/openid-connect/userinfo",
            Some(&r.str("access_token")),
        )
        .await;
    assert_eq!(info.body["preferred_username"], "alice");
    // Refresh works and rotates.
    let refreshed = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "web"),
                ("refresh_token", &r.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
}

async fn code_replay_revokes_what_it_issued(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let q = code_flow(&app, &mut b, &[]).await;
    let first = redeem(&app, &q["code"], Some(VERIFIER), WEB_CB).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = redeem(&app, &q["code"], Some(VERIFIER), WEB_CB).await;
    assert_eq!(
        (again.status, again.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // Everything from the first redemption is dead.
    let info = app
        .get(
            "/realms/test/protocol/openid-connect/userinfo",
            Some(&first.str("access_token")),
        )
        .await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED);
    let refreshed = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "web"),
                ("refresh_token", &first.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(refreshed.error(), "invalid_grant");
}

async fn pkce_is_enforced(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    // At the authorization endpoint: missing, plain, malformed.
    for (extra, why) in [
        (
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "required",
        ),
        (vec![("code_challenge_method", "plain")], "plain"),
        (vec![("code_challenge_method", "")], "plain"),
        (vec![("code_challenge", "short")], "43"),
    ] {
        let page = b.get(&app, &auth_url("web", WEB_CB, &extra)).await;
        assert_eq!(page.status, StatusCode::FOUND, "{extra:?}");
        let q = page.query();
        assert_eq!(q["error"], "invalid_request", "{extra:?}");
        assert!(
            q["error_description"].contains(why),
            "{extra:?}: {}",
            q["error_description"]
        );
        assert_eq!(q["state"], "st-123");
    }
    // At the token endpoint: missing, wrong and plain (the challenge itself) verifiers.
    let q = code_flow(&app, &mut b, &[]).await;
    for bad in [None, Some("x".repeat(43).as_str()), Some(CHALLENGE)] {
        let r = redeem(&app, &q["code"], bad, WEB_CB).await;
        assert_eq!(r.error(), "invalid_grant", "{bad:?}");
    }
    // A failed verifier does not spend the code.
    assert_eq!(
        redeem(&app, &q["code"], Some(VERIFIER), WEB_CB)
            .await
            .status,
        StatusCode::OK
    );
}

async fn redirect_uri_must_match_exactly(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    for bad in [
        "http://127.0.0.1:9999/cb/extra",
        "http://127.0.0.1:9999/c",
        "http://127.0.0.1:9998/cb",
        "http://127.0.0.1:9999/cb#frag",
        "http://127.0.0.1:9999/cb?x=1",
        "https://app.example.evil/cb",
        "http://localhost:3001/cb",
        "https://evil.example/cb",
    ] {
        let page = b.get(&app, &auth_url("web", bad, &[])).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            page.headers.get("location").is_none(),
            "never redirects: {bad}"
        );
        assert!(
            page.html.contains("not one this application registered"),
            "{bad}"
        );
        assert!(!page.html.contains("evil"), "the page never reflects input");
    }
    // Unknown client: an error page, no redirect, no reflection.
    let page = b
        .get(&app, &auth_url("<script>alert(1)</script>", WEB_CB, &[]))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.html.contains("<script>alert"));
    // The token endpoint checks the redirect URI the code was issued for.
    let q = code_flow(&app, &mut b, &[]).await;
    let r = redeem(&app, &q["code"], Some(VERIFIER), "https://app.example/cb").await;
    assert_eq!(r.error(), "invalid_grant");
}

async fn bad_requests_go_back_to_the_client(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "openid nosuchscope")], "invalid_scope"),
        (vec![("response_mode", "query.jwt")], "invalid_request"),
        (vec![("prompt", "none")], "login_required"),
        (vec![("prompt", "none login")], "invalid_request"),
    ];
    for (extra, error) in cases {
        let page = b.get(&app, &auth_url("web", WEB_CB, &extra)).await;
        assert_eq!(page.status, StatusCode::FOUND, "{extra:?}");
        let q = page.query();
        assert_eq!(
            (q["error"].as_str(), q["state"].as_str()),
            (error, "st-123"),
            "{extra:?}"
        );
    }
}

async fn sso_cookie_signs_a_second_client_in(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    code_flow(&app, &mut b, &[]).await;
    let sso = b
        .jar
        .iter()
        .find(|((n, p), _)| n == "TESSERA_SSO" && p == "/realms/test/")
        .map(|(_, v)| v.clone());
    assert!(
        sso.is_some(),
        "SSO cookie at the realm path: {:?}",
        b.jar.keys()
    );
    // The cookie attributes.
    let mut fresh = Browser::default();
    let page = fresh.get(&app, &auth_url("web", WEB_CB, &[])).await;
    let done = fresh
        .login(&app, AUTH, &page, "alice", ALICE_PASSWORD)
        .await;
    let cookies: Vec<String> = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect();
    let sso_cookie = cookies
        .iter()
        .find(|c| c.starts_with("TESSERA_SSO="))
        .expect("sso cookie");
    assert!(
        sso_cookie.contains("HttpOnly") && sso_cookie.contains("SameSite=Lax"),
        "{sso_cookie}"
    );
    assert!(!sso_cookie.contains("Secure"), "plain http test server");
    // A second client: no login page.
    let page = b.get(&app, &auth_url("plain", WEB_CB, &[])).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.html);
    assert!(page.query().contains_key("code"));
    // prompt=none works now; prompt=login asks again; max_age=0 too.
    assert!(b
        .get(&app, &auth_url("web", WEB_CB, &[("prompt", "none")]))
        .await
        .query()
        .contains_key("code"));
    assert_eq!(
        b.get(&app, &auth_url("web", WEB_CB, &[("prompt", "login")]))
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        b.get(&app, &auth_url("web", WEB_CB, &[("max_age", "0")]))
            .await
            .status,
        StatusCode::OK
    );
    // form_post: an auto-submitting form to the redirect URI, allowed by CSP.
    let page = b
        .get(
            &app,
            &auth_url("web", WEB_CB, &[("response_mode", "form_post")]),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html.contains(&format!("action=\"{WEB_CB}\"")),
        "{}",
        page.html
    );
    assert!(page.input("state") == "st-123" && !page.input("code").is_empty());
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9999")
            && csp.contains("script-src 'nonce-"),
        "{csp}"
    );
}

async fn login_failures_are_generic_and_forms_need_csrf(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let url = auth_url("web", WEB_CB, &[]);
    let page = b.get(&app, &url).await;
    let wrong = b.login(&app, AUTH, &page, "alice", "wrong").await;
    let unknown = b.login(&app, AUTH, &page, "nobody", "wrong").await;
    assert_eq!(wrong.status, unknown.status);
    for p in [&wrong, &unknown] {
        assert!(
            p.html.contains("Invalid username or password."),
            "{}",
            p.html
        );
        assert!(!b.signed_in());
    }
    assert!(
        unknown.html.contains("value=\"nobody\""),
        "the username is kept (escaped)"
    );
    let xss = b
        .login(&app, AUTH, &page, "\"><script>x()</script>", "pw")
        .await;
    assert!(!xss.html.contains("<script>x()"), "usernames are escaped");
    // No CSRF token, a token of another browser, a forged login state.
    let state = page.input("login_state");
    let r = b
        .post(
            &app,
            AUTH,
            &[
                ("login_state", &state),
                ("username", "alice"),
                ("password", ALICE_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let mut other = Browser::default();
    let other_page = other.get(&app, &url).await;
    let r = b
        .post(
            &app,
            AUTH,
            &[
                ("csrf", &other_page.input("csrf")),
                ("login_state", &state),
                ("username", "alice"),
                ("password", ALICE_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.html.contains("expired or was opened in another browser"));
    let r = b
        .post(
            &app,
            AUTH,
            &[
                ("csrf", &page.input("csrf")),
                ("login_state", "forged.state.x"),
                ("username", "alice"),
                ("password", ALICE_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!b.signed_in(), "nothing signed in");
    // The right form still works.
    let ok = b.login(&app, AUTH, &page, "alice", ALICE_PASSWORD).await;
    assert_eq!(ok.status, StatusCode::FOUND);
}

async fn pages_send_security_headers(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    for path in [
        auth_url("web", WEB_CB, &[]),
        DEVICE.to_string(),
        ACCOUNT.to_string(),
        auth_url("nope", WEB_CB, &[]),
    ] {
        let page = b.get(&app, &path).await;
        let h = &page.headers;
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("script-src"), "no scripts on {path}");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html"));
        assert!(
            !page.html.contains("<link") && !page.html.contains(" src="),
            "no external assets: {path}"
        );
        // The one inline stylesheet is allowed by its hash, nothing else.
        if let Some(start) = page.html.find("<style>") {
            let css = &page.html[start + 7..page.html.find("</style>").expect("closing tag")];
            let hash =
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(css.as_bytes()));
            assert!(csp.contains(&format!("style-src 'sha256-{hash}'")), "{csp}");
        }
    }
    let unknown_realm = b.get(&app, "/realms/nope/account").await;
    assert_eq!(unknown_realm.status, StatusCode::NOT_FOUND);
}

async fn device_flow_end_to_end(app: TestApp) {
    seed_clients(&app).await;
    let start = app
        .form(
            "/realms/test/protocol/openid-connect/auth/device",
            &[("client_id", "web"), ("scope", "openid")],
        )
        .await;
    assert_eq!(start.status, StatusCode::OK, "{:?}", start.body);
    let (device_code, user_code) = (start.str("device_code"), start.str("user_code"));
    assert_eq!(start.body["interval"], 5);
    assert_eq!(
        start.body["verification_uri"],
        format!("{PUBLIC_URL}/realms/test/device")
    );
    assert!(start
        .str("verification_uri_complete")
        .ends_with(&format!("?user_code={user_code}")));
    assert!(
        user_code.len() == 9
            && user_code
                .chars()
                .all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );
    let poll = || poll_device(&app, "web", &device_code);
    assert_eq!(poll().await.error(), "authorization_pending");
    assert_eq!(
        poll().await.error(),
        "slow_down",
        "polled faster than the interval"
    );
    // The person opens the complete URI, signs in, and sees the client.
    let mut b = Browser::default();
    let path = format!("{DEVICE}?user_code={}", user_code.to_lowercase());
    let page = b.get(&app, &path).await;
    let after = b.login(&app, DEVICE, &page, "alice", ALICE_PASSWORD).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    let confirm = b.get(&app, &after.location()).await;
    assert!(
        confirm.html.contains("Web IDE") && confirm.html.contains(&user_code),
        "{}",
        confirm.html
    );
    // CSRF is required to approve.
    let r = b
        .post(
            &app,
            DEVICE,
            &[("user_code", &user_code), ("action", "approve")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.state
            .tokens
            .store
            .device_code(&tessera_core::TokenHash::of(&device_code))
            .await
            .expect("db")
            .expect("code")
            .status,
        tessera_core::DeviceStatus::Pending
    );
    let csrf = confirm.input("csrf");
    let done = b
        .post(
            &app,
            DEVICE,
            &[
                ("csrf", &csrf),
                ("user_code", &user_code),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.html.contains("Device connected"));
    // Approving twice is refused; the first decision stands.
    let twice = b
        .post(
            &app,
            DEVICE,
            &[
                ("csrf", &csrf),
                ("user_code", &user_code),
                ("action", "deny"),
            ],
        )
        .await;
    assert!(twice.html.contains("already been used"), "{}", twice.html);
    // Tokens once (after waiting out the raised interval), then never again.
    force_poll_window(&app, &device_code).await;
    let tokens = poll().await;
    assert_eq!(tokens.status, StatusCode::OK, "{:?}", tokens.body);
    assert_eq!(
        claims(&tokens.str("access_token"))["preferred_username"],
        "alice"
    );
    force_poll_window(&app, &device_code).await;
    assert_eq!(poll().await.error(), "invalid_grant");
}

async fn poll_device(app: &TestApp, client: &str, device_code: &str) -> Resp {
    app.form(
        &TestApp::token_path("test"),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client),
            ("device_code", device_code),
        ],
    )
    .await
}

/// Moves the last poll far into the past so the next poll is on time.
async fn force_poll_window(app: &TestApp, device_code: &str) {
    let hash = tessera_core::TokenHash::of(device_code);
    // A poll at time 0 resets `last_polled_at` (or raises the interval,
    // then it is at 0 anyway); either way the next real poll is on time.
    app.state
        .tokens
        .store
        .record_device_poll(&hash, 0)
        .await
        .expect("db");
    app.state
        .tokens
        .store
        .record_device_poll(&hash, 1)
        .await
        .expect("db");
}

async fn device_denied_expired_and_refused(app: TestApp) {
    seed_clients(&app).await;
    // A client without the attribute cannot start the flow.
    let r = app
        .form(
            "/realms/test/protocol/openid-connect/auth/device",
            &[("client_id", "plain")],
        )
        .await;
    assert_eq!(r.error(), "unauthorized_client");
    let r = app
        .form(
            "/realms/test/protocol/openid-connect/auth/device",
            &[("client_id", "nosuch")],
        )
        .await;
    assert_eq!(r.error(), "invalid_client");
    // Denied.
    let start = app
        .form(
            "/realms/test/protocol/openid-connect/auth/device",
            &[("client_id", "web")],
        )
        .await;
    let (device_code, user_code) = (start.str("device_code"), start.str("user_code"));
    let mut b = Browser::default();
    let page = b.get(&app, DEVICE).await;
    let after = b.login(&app, DEVICE, &page, "alice", ALICE_PASSWORD).await;
    let enter = b.get(&app, &after.location()).await;
    let wrong = b
        .post(
            &app,
            DEVICE,
            &[("csrf", &enter.input("csrf")), ("user_code", "BBBB-BBBB")],
        )
        .await;
    assert!(wrong.html.contains("not valid"), "{}", wrong.html);
    let confirm = b
        .post(
            &app,
            DEVICE,
            &[("csrf", &enter.input("csrf")), ("user_code", &user_code)],
        )
        .await;
    assert!(confirm.html.contains("Web IDE"));
    let denied = b
        .post(
            &app,
            DEVICE,
            &[
                ("csrf", &confirm.input("csrf")),
                ("user_code", &user_code),
                ("action", "deny"),
            ],
        )
        .await;
    assert!(denied.html.contains("Request denied"));
    let r = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "web"),
                ("device_code", &device_code),
            ],
        )
        .await;
    assert_eq!(r.error(), "access_denied");
    // Another client cannot redeem it.
    let r = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "plain"),
                ("device_code", &device_code),
            ],
        )
        .await;
    assert_eq!(r.error(), "unauthorized_client");
}

async fn device_codes_expire(app: TestApp) {
    seed_clients(&app).await;
    let start = app
        .form(
            "/realms/test/protocol/openid-connect/auth/device",
            &[("client_id", "web")],
        )
        .await;
    let (device_code, user_code) = (start.str("device_code"), start.str("user_code"));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let r = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "web"),
                ("device_code", &device_code),
            ],
        )
        .await;
    assert_eq!(r.error(), "expired_token");
    let mut b = Browser::default();
    let page = b.get(&app, DEVICE).await;
    let after = b.login(&app, DEVICE, &page, "alice", ALICE_PASSWORD).await;
    let enter = b.get(&app, &after.location()).await;
    let r = b
        .post(
            &app,
            DEVICE,
            &[
                ("csrf", &enter.input("csrf")),
                ("user_code", &user_code),
                ("action", "approve"),
            ],
        )
        .await;
    assert!(r.html.contains("expired"), "{}", r.html);
}

async fn rp_logout_ends_the_sso_session_and_its_tokens(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let q = code_flow(&app, &mut b, &[]).await;
    let tokens = redeem(&app, &q["code"], Some(VERIFIER), WEB_CB).await;
    let id_token = tokens.str("id_token");
    // A password-grant session of alice elsewhere stays.
    let other = app.alice(None).await;
    // Foreign post_logout_redirect_uri: an error page, nothing ends.
    for bad in [
        "https://evil.example/bye",
        "https://app.example/bye/x",
        "https://app.example/bye#x",
    ] {
        let path = format!(
            "{LOGOUT}?{}",
            serde_urlencoded::to_string([
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", bad)
            ])
            .expect("query")
        );
        let page = b.get(&app, &path).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(page.headers.get("location").is_none());
    }
    let info = app
        .get(
            "/realms/test/protocol/openid-connect/userinfo",
            Some(&tokens.str("access_token")),
        )
        .await;
    assert_eq!(info.status, StatusCode::OK, "nothing ended yet");
    // A forged hint proves nothing: the user is asked, nothing ends.
    let page = b.get(&app, &format!("{LOGOUT}?id_token_hint=a.b.c")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("Sign out of") && b.signed_in());
    // The real thing.
    let path = format!(
        "{LOGOUT}?{}",
        serde_urlencoded::to_string([
            ("id_token_hint", id_token.as_str()),
            ("post_logout_redirect_uri", "https://app.example/bye"),
            ("state", "s9")
        ])
        .expect("query")
    );
    let page = b.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location(), "https://app.example/bye?state=s9");
    assert!(!b.signed_in(), "cookie cleared");
    let info = app
        .get(
            "/realms/test/protocol/openid-connect/userinfo",
            Some(&tokens.str("access_token")),
        )
        .await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED);
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
    assert_eq!(
        app.refresh(&other.str("refresh_token")).await.status,
        StatusCode::OK,
        "other sessions stay"
    );
    // The SSO cookie no longer signs in.
    assert_eq!(
        b.get(&app, &auth_url("web", WEB_CB, &[("prompt", "none")]))
            .await
            .query()["error"],
        "login_required"
    );
}

async fn logout_without_hint_asks_first(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    code_flow(&app, &mut b, &[]).await;
    let path = format!(
        "{LOGOUT}?client_id=web&post_logout_redirect_uri={}",
        "https%3A%2F%2Fapp.example%2Fbye"
    );
    let confirm = b.get(&app, &path).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.html.contains("Sign out of"), "{}", confirm.html);
    assert!(b.signed_in(), "a link alone signs nobody out");
    // Without the CSRF token nothing happens.
    let r = b
        .post(&app, LOGOUT, &[("confirm", "1"), ("client_id", "web")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(b
        .get(&app, &auth_url("web", WEB_CB, &[("prompt", "none")]))
        .await
        .query()
        .contains_key("code"));
    let done = b
        .post(
            &app,
            LOGOUT,
            &[
                ("csrf", &confirm.input("csrf")),
                ("confirm", "1"),
                ("client_id", "web"),
                ("post_logout_redirect_uri", "https://app.example/bye"),
            ],
        )
        .await;
    assert_eq!(
        (done.status, done.location().as_str()),
        (StatusCode::SEE_OTHER, "https://app.example/bye")
    );
    assert_eq!(
        b.get(&app, &auth_url("web", WEB_CB, &[("prompt", "none")]))
            .await
            .query()["error"],
        "login_required"
    );
    // post_logout_redirect_uri without a client is refused.
    let page = b
        .get(
            &app,
            &format!("{LOGOUT}?post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye"),
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

async fn account_page_lists_and_signs_out_sessions(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let page = b.get(&app, ACCOUNT).await;
    let after = b.login(&app, ACCOUNT, &page, "alice", ALICE_PASSWORD).await;
    assert_eq!(
        (after.status, after.location().as_str()),
        (StatusCode::SEE_OTHER, ACCOUNT)
    );
    let laptop = app.alice(None).await; // a password-grant app connection, device laptop-1
    let account = b.get(&app, ACCOUNT).await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(
        account.html.contains("alice@example.test") && account.html.contains("laptop-1"),
        "{}",
        account.html
    );
    assert!(account.html.contains("192.0.2.7") && account.html.contains("this browser"));
    let sid = claims(&laptop.str("access_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    // Signing out needs the CSRF token of this browser.
    let r = b
        .post(&app, ACCOUNT, &[("action", "sign-out"), ("session", &sid)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.refresh(&laptop.str("refresh_token")).await.status,
        StatusCode::OK
    );
    let fresh = app.alice(None).await;
    let sid = claims(&fresh.str("access_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let account = b.get(&app, ACCOUNT).await;
    let r = b
        .post(
            &app,
            ACCOUNT,
            &[
                ("csrf", &account.input("csrf")),
                ("action", "sign-out"),
                ("session", &sid),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.refresh(&fresh.str("refresh_token")).await.error(),
        "invalid_grant"
    );
    let shown = b.get(&app, &r.location()).await;
    assert!(shown.html.contains("The session was signed out."));
    // Bob's session cannot be signed out from alice's page.
    let bob = app
        .login_at(&TestApp::token_path("test"), "cli", "bob", "bob-password")
        .await;
    let bob_sid = claims(&bob.str("access_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let r = b
        .post(
            &app,
            ACCOUNT,
            &[
                ("csrf", &account.input("csrf")),
                ("action", "sign-out"),
                ("session", &bob_sid),
            ],
        )
        .await;
    assert!(r.html.contains("already ended"));
    assert_eq!(app.active_sessions("bob").await, 1);
    // Sign out everywhere: the browser too.
    let r = b
        .post(
            &app,
            ACCOUNT,
            &[
                ("csrf", &account.input("csrf")),
                ("action", "sign-out-everywhere"),
            ],
        )
        .await;
    assert!(r.html.contains("Signed out everywhere"));
    assert!(!b.signed_in());
    assert_eq!(app.active_sessions("alice").await, 0);
    assert!(
        b.get(&app, ACCOUNT).await.html.contains("login_state"),
        "back to the login form"
    );
}

async fn account_password_change(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let page = b.get(&app, ACCOUNT).await;
    b.login(&app, ACCOUNT, &page, "alice", ALICE_PASSWORD).await;
    let other = app.alice(None).await;
    let account = b.get(&app, ACCOUNT).await;
    let csrf = account.input("csrf");
    let change = |cur: &'static str, new: &'static str, confirm: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", "change-password".into()),
            ("current_password", cur.into()),
            ("new_password", new.into()),
            ("confirm_password", confirm.into()),
            ("sign_out_others", "1".into()),
        ]
    };
    for (form, msg) in [
        (
            change("wrong", "new-password-1", "new-password-1"),
            "current password is not correct",
        ),
        (
            change(ALICE_PASSWORD, "new-password-1", "new-password-2"),
            "do not match",
        ),
        (change(ALICE_PASSWORD, "short", "short"), "at least 8"),
    ] {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = b.post(&app, ACCOUNT, &pairs).await;
        assert!(r.html.contains(msg), "{msg}: {}", r.html);
    }
    let form = change(ALICE_PASSWORD, "new-password-1", "new-password-1");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post(&app, ACCOUNT, &pairs).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    assert!(b.signed_in(), "this browser stays signed in");
    assert!(b
        .get(&app, &r.location())
        .await
        .html
        .contains("Your password was changed."));
    assert_eq!(
        app.refresh(&other.str("refresh_token")).await.error(),
        "invalid_grant",
        "others signed out"
    );
    let r = app
        .login_at(
            &TestApp::token_path("test"),
            "cli",
            "alice",
            "new-password-1",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn account_api_with_a_bearer_token(app: TestApp) {
    seed_clients(&app).await;
    let mine = app.alice(None).await;
    let laptop = app.alice(None).await;
    let token = mine.str("access_token");
    let r = app.get("/realms/test/account/sessions", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let list = r.body.as_array().expect("array");
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["clientId"], "app");
    assert_eq!(current[0]["deviceId"], "laptop-1");
    assert_eq!(current[0]["ipAddress"], "192.0.2.7");
    // No token, a refresh token, bob's session id: refused.
    assert_eq!(
        app.get("/realms/test/account/sessions", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(
            "/realms/test/account/sessions",
            Some(&mine.str("refresh_token"))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let bob = app
        .login_at(&TestApp::token_path("test"), "cli", "bob", "bob-password")
        .await;
    let bob_sid = claims(&bob.str("access_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let r = app
        .json(
            Method::DELETE,
            &format!("/realms/test/account/sessions/{bob_sid}"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Sign out one, then every other.
    let laptop_sid = claims(&laptop.str("access_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let r = app
        .json(
            Method::DELETE,
            &format!("/realms/test/account/sessions/{laptop_sid}"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh(&laptop.str("refresh_token")).await.error(),
        "invalid_grant"
    );
    let third = app.alice(None).await;
    let r = app
        .json(
            Method::DELETE,
            "/realms/test/account/sessions",
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh(&third.str("refresh_token")).await.error(),
        "invalid_grant"
    );
    assert_eq!(
        app.active_sessions("alice").await,
        1,
        "the caller's own session stays"
    );
    let r = app
        .json(
            Method::DELETE,
            "/realms/test/account/sessions?current=true",
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.active_sessions("alice").await, 0);
    assert_eq!(app.active_sessions("bob").await, 1);
}

async fn discovery_advertises_browser_endpoints(app: TestApp) {
    let r = app
        .get("/realms/test/.well-known/openid-configuration", None)
        .await;
    assert_eq!(
        r.body["authorization_endpoint"],
        format!("{PUBLIC_URL}/realms/test/protocol/openid-connect/auth")
    );
    assert_eq!(
        r.body["device_authorization_endpoint"],
        format!("{PUBLIC_URL}/realms/test/protocol/openid-connect/auth/device")
    );
    assert_eq!(r.body["code_challenge_methods_supported"], json!(["S256"]));
    let grants = r.body["grant_types_supported"].as_array().expect("array");
    assert!(
        grants.contains(&json!("authorization_code"))
            && grants.contains(&json!("urn:ietf:params:oauth:grant-type:device_code"))
    );
}

async fn confidential_clients_and_foreign_redemptions(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    // A confidential client may skip PKCE; its code needs its secret.
    let url = auth_url(
        "svc",
        WEB_CB,
        &[("code_challenge", ""), ("code_challenge_method", "")],
    );
    let page = b.get(&app, &url).await;
    let done = b.login(&app, AUTH, &page, "alice", ALICE_PASSWORD).await;
    let code = done.query()["code"].clone();
    let redeem_svc = |secret: Option<&'static str>, verifier: Option<&'static str>| {
        let code = code.clone();
        let app = &app;
        async move {
            let mut pairs = vec![
                ("grant_type", "authorization_code"),
                ("client_id", "svc"),
                ("code", code.as_str()),
                ("redirect_uri", WEB_CB),
            ];
            if let Some(s) = secret {
                pairs.push(("client_secret", s));
            }
            if let Some(v) = verifier {
                pairs.push(("code_verifier", v));
            }
            app.form(&TestApp::token_path("test"), &pairs).await
        }
    };
    assert_eq!(
        redeem_svc(None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        redeem_svc(Some("wrong-secret-wrong-secret"), None)
            .await
            .error(),
        "invalid_client"
    );
    // A verifier for a request that had no challenge is refused.
    assert_eq!(
        redeem_svc(Some(SVC_SECRET), Some(VERIFIER)).await.error(),
        "invalid_grant"
    );
    assert_eq!(
        redeem_svc(Some(SVC_SECRET), None).await.status,
        StatusCode::OK
    );
    // web's code is not plain's to redeem; and redirect_uri is required.
    let q = code_flow(&app, &mut b, &[]).await;
    let r = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "plain"),
                ("code", &q["code"]),
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.error(), "invalid_grant");
    let r = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "web"),
                ("code", &q["code"]),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.error(), "invalid_grant");
    assert_eq!(
        redeem(&app, &q["code"], Some(VERIFIER), WEB_CB)
            .await
            .status,
        StatusCode::OK,
        "still unspent"
    );
    // A code whose browser signed out meanwhile is refused.
    let q = code_flow(&app, &mut b, &[]).await;
    let account = b.get(&app, ACCOUNT).await;
    let r = b
        .post(
            &app,
            ACCOUNT,
            &[
                ("csrf", &account.input("csrf")),
                ("action", "sign-out-everywhere"),
            ],
        )
        .await;
    assert!(r.html.contains("Signed out everywhere"));
    let r = redeem(&app, &q["code"], Some(VERIFIER), WEB_CB).await;
    assert_eq!(
        (r.error(), r.body["error_description"].as_str()),
        ("invalid_grant", Some("Session not active"))
    );
}

async fn loopback_redirects_take_any_port_and_fragments_work(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let cb = "http://127.0.0.1:53127/callback";
    let page = b.get(&app, &auth_url("web", cb, &[])).await;
    let done = b.login(&app, AUTH, &page, "alice", ALICE_PASSWORD).await;
    assert!(done.location().starts_with(cb), "{}", done.location());
    let code = done.query()["code"].clone();
    assert_eq!(
        redeem(&app, &code, Some(VERIFIER), cb).await.status,
        StatusCode::OK
    );
    for bad in [
        "http://127.0.0.1:53127/callback/x",
        "http://localhost:53127/callback",
        "http://127.0.0.1:53127/x/../callback",
    ] {
        assert_eq!(
            b.get(&app, &auth_url("web", bad, &[])).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    // response_mode=fragment: the answer is in the fragment.
    let page = b
        .get(
            &app,
            &auth_url("web", WEB_CB, &[("response_mode", "fragment")]),
        )
        .await;
    let loc = url::Url::parse(&page.location()).expect("url");
    assert!(loc.query().is_none());
    let frag: HashMap<String, String> =
        url::form_urlencoded::parse(loc.fragment().expect("fragment").as_bytes())
            .into_owned()
            .collect();
    assert!(frag.contains_key("code") && frag["state"] == "st-123");
    // A repeated parameter gets a page in our own words.
    let page = b
        .get(
            &app,
            &format!(
                "{}&Call+555+now=1&Call+555+now=2",
                auth_url("web", WEB_CB, &[])
            ),
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.html.contains("555"));
}

async fn signing_in_again_renews_or_replaces_the_browser_session(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let q = code_flow(&app, &mut b, &[]).await;
    let first = redeem(&app, &q["code"], Some(VERIFIER), WEB_CB).await;
    let key = ("TESSERA_SSO".to_string(), "/realms/test/".to_string());
    let old_cookie = b.jar.get(&key).cloned().expect("cookie");
    // prompt=login as the same user: a new cookie, the same browser session,
    // and the app signed in from it stays signed in.
    let page = b
        .get(&app, &auth_url("web", WEB_CB, &[("prompt", "login")]))
        .await;
    b.login(&app, AUTH, &page, "alice", ALICE_PASSWORD).await;
    let new_cookie = b.jar.get(&key).cloned().expect("cookie");
    assert_ne!(old_cookie, new_cookie, "the cookie secret rotates");
    let mut stale = Browser::default();
    stale.jar.insert(key.clone(), old_cookie);
    assert_eq!(
        stale
            .get(&app, &auth_url("web", WEB_CB, &[("prompt", "none")]))
            .await
            .query()["error"],
        "login_required"
    );
    let alice = app.user_id("test", "alice").await;
    let realm = app.state.tokens.realm("test").await.expect("realm");
    let browsers = app
        .state
        .tokens
        .store
        .user_sso_sessions(&realm.id, &alice, tessera_core::time::now_ms())
        .await
        .expect("db");
    assert_eq!(browsers.len(), 1);
    let r = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "web"),
                ("refresh_token", &first.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Bob signs in on the same browser: alice's browser session ends.
    let page = b
        .get(&app, &auth_url("web", WEB_CB, &[("prompt", "login")]))
        .await;
    b.login(&app, AUTH, &page, "bob", "bob-password").await;
    let r = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "web"),
                ("refresh_token", &r.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(r.error(), "invalid_grant");
    // A login form of another page does not sign anyone in here.
    let mut c = Browser::default();
    let account = c.get(&app, ACCOUNT).await;
    let r = c.login(&app, AUTH, &account, "alice", ALICE_PASSWORD).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!c.signed_in());
}

async fn device_approval_needs_this_browser_and_dies_with_sign_out(app: TestApp) {
    seed_clients(&app).await;
    let start = app
        .form(
            "/realms/test/protocol/openid-connect/auth/device",
            &[("client_id", "web")],
        )
        .await;
    let (device_code, user_code) = (start.str("device_code"), start.str("user_code"));
    let mut b = Browser::default();
    let page = b.get(&app, DEVICE).await;
    let after = b.login(&app, DEVICE, &page, "alice", ALICE_PASSWORD).await;
    let enter = b.get(&app, &after.location()).await;
    // Another signed-in browser's token, or none, decides nothing.
    let mut other = Browser::default();
    let p = other.get(&app, DEVICE).await;
    let after_other = other.login(&app, DEVICE, &p, "bob", "bob-password").await;
    let other_page = other.get(&app, &after_other.location()).await;
    let other_csrf = other_page.input("csrf");
    for form in [
        vec![
            ("csrf", other_csrf.as_str()),
            ("user_code", user_code.as_str()),
            ("action", "approve"),
        ],
        vec![("user_code", user_code.as_str()), ("action", "deny")],
    ] {
        assert_eq!(
            b.post(&app, DEVICE, &form).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    let code = app
        .state
        .tokens
        .store
        .device_code(&tessera_core::TokenHash::of(&device_code))
        .await
        .expect("db")
        .expect("code");
    assert_eq!(code.status, tessera_core::DeviceStatus::Pending);
    let ok = b
        .post(
            &app,
            DEVICE,
            &[
                ("csrf", &enter.input("csrf")),
                ("user_code", &user_code),
                ("action", "approve"),
            ],
        )
        .await;
    assert!(ok.html.contains("Device connected"));
    // Alice signs out everywhere before the device collects its tokens.
    let account = b.get(&app, ACCOUNT).await;
    b.post(
        &app,
        ACCOUNT,
        &[
            ("csrf", &account.input("csrf")),
            ("action", "sign-out-everywhere"),
        ],
    )
    .await;
    assert_eq!(
        poll_device(&app, "web", &device_code).await.error(),
        "access_denied"
    );
}

async fn account_forms_need_csrf(app: TestApp) {
    seed_clients(&app).await;
    let mut b = Browser::default();
    let page = b.get(&app, ACCOUNT).await;
    b.login(&app, ACCOUNT, &page, "alice", ALICE_PASSWORD).await;
    for form in [
        vec![("action", "sign-out-everywhere")],
        vec![
            ("action", "change-password"),
            ("current_password", ALICE_PASSWORD),
            ("new_password", "new-password-9"),
            ("confirm_password", "new-password-9"),
        ],
    ] {
        assert_eq!(
            b.post(&app, ACCOUNT, &form).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        app.login_at(&TestApp::token_path("test"), "cli", "alice", ALICE_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
    // A token from a page of another browser sign-in (same CSRF cookie) is refused.
    let before = b.get(&app, ACCOUNT).await;
    let bob_page = b
        .get(&app, &auth_url("web", WEB_CB, &[("prompt", "login")]))
        .await;
    b.login(&app, AUTH, &bob_page, "bob", "bob-password").await;
    let r = b
        .post(
            &app,
            ACCOUNT,
            &[
                ("csrf", &before.input("csrf")),
                ("action", "sign-out-everywhere"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.active_sessions("bob").await,
        0,
        "bob has only a browser session"
    );
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
