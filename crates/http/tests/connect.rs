//! Upstream providers: connect, SSO sign-up with polling, Che's OAuth API,
//! environment routing and the relay, against a small OAuth 2 provider
//! served on a real socket (Tessera's client talks to it over HTTP). The
//! OIDC path runs against npm `oidc-provider` in the interop suite.

mod common;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tessera_connect::{ConnectConfig, Flow, StateClaims};
use tessera_oauth::events::ServerEvent;

const SECRET: &str = "upstream-secret";

/// What the upstream provider knows and has been asked.
#[derive(Default)]
struct Mock {
    /// Who signs in at the next authorization.
    login: String,
    email: Option<String>,
    email_verified: bool,
    deny: bool,
    expires_in: i64,
    codes: HashMap<String, (String, String)>,
    live: HashSet<String>,
    revoked: Vec<String>,
    token_calls: usize,
    refreshes: usize,
}

type Shared = Arc<Mutex<Mock>>;

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn authorize(State(m): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut m = m.lock().expect("mock");
    assert_eq!(q["client_id"], "tessera");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256", "PKCE S256 is sent");
    let (redirect, state) = (&q["redirect_uri"], &q["state"]);
    if m.deny {
        return Redirect::to(&format!("{redirect}?error=access_denied&state={state}"))
            .into_response();
    }
    let code = random();
    m.codes.insert(
        code.clone(),
        (q["code_challenge"].clone(), redirect.clone()),
    );
    Redirect::to(&format!("{redirect}?code={code}&state={state}")).into_response()
}

async fn token(
    State(m): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut m = m.lock().expect("mock");
    m.token_calls += 1;
    let basic = format!("Basic {}", STANDARD.encode(format!("tessera:{SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let bad = || {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response()
    };
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, redirect)) = m.codes.remove(&f["code"]) else {
                return bad();
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge
                || f.get("redirect_uri") != Some(&redirect)
            {
                return bad();
            }
        }
        Some("refresh_token") => {
            if !m.live.contains(&f["refresh_token"]) {
                return bad();
            }
            m.refreshes += 1;
        }
        _ => return bad(),
    }
    let (access, refresh) = (format!("up-at-{}", random()), format!("up-rt-{}", random()));
    m.live.insert(access.clone());
    m.live.insert(refresh.clone());
    Json(
        json!({"access_token": access, "token_type": "Bearer", "expires_in": m.expires_in,
        "refresh_token": refresh, "scope": "read:user repo"}),
    )
    .into_response()
}

async fn userinfo(State(m): State<Shared>, headers: HeaderMap) -> Response {
    let m = m.lock().expect("mock");
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !m.live.contains(token) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(
        json!({"id": format!("id-{}", m.login), "login": m.login, "email": m.email,
        "verified": m.email_verified, "name": "Upstream Person"}),
    )
    .into_response()
}

async fn revoke(State(m): State<Shared>, Form(f): Form<HashMap<String, String>>) -> StatusCode {
    let mut m = m.lock().expect("mock");
    m.live.remove(&f["token"]);
    m.revoked.push(f["token"].clone());
    StatusCode::OK
}

/// Echoes what reached it: the relay target.
async fn echo(method: Method, uri: axum::http::Uri, headers: HeaderMap, body: String) -> Response {
    let mut res = Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "signature": headers.get("x-slack-signature").and_then(|v| v.to_str().ok()),
        "contentType": headers.get("content-type").and_then(|v| v.to_str().ok()),
        "cookie": headers.get("cookie").and_then(|v| v.to_str().ok()),
        "relayed": headers.get("x-tessera-relayed").and_then(|v| v.to_str().ok()),
        "body": body,
    }))
    .into_response();
    *res.status_mut() = StatusCode::ACCEPTED;
    res.headers_mut()
        .insert("x-echo", axum::http::HeaderValue::from_static("yes"));
    res.headers_mut().insert(
        "set-cookie",
        axum::http::HeaderValue::from_static("TESSERA_SSO=from-b; Path=/"),
    );
    res
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

struct World {
    app: TestApp,
    mock: Shared,
    upstream: String,
    http: reqwest::Client,
    /// The browser's cookies (name -> value), from the redirects to the provider.
    jar: Mutex<BTreeMap<String, String>>,
}

fn provider_toml(base: &str) -> String {
    format!(
        "kind = \"oauth2\"\nclient_id = \"tessera\"\nclient_secret_env = \"ACME_SECRET\"\n\
         authorize_url = \"{base}/authorize\"\ntoken_url = \"{base}/token\"\n\
         userinfo_url = \"{base}/userinfo\"\nrevocation_url = \"{base}/revoke\"\n\
         scopes = [\"read:user\", \"repo\"]\nsubject_field = \"id\"\nusername_field = \"login\"\n\
         email_verified_field = \"verified\"\n"
    )
}

async fn world(backend: Backend) -> Option<World> {
    let mock: Shared = Arc::new(Mutex::new(Mock {
        login: "octo".into(),
        email: Some("octo@upstream.test".into()),
        expires_in: 3600,
        ..Mock::default()
    }));
    let upstream = serve(
        Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/revoke", post(revoke))
            .with_state(mock.clone()),
    )
    .await;
    let b = serve(Router::new().route("/{*rest}", any(echo))).await;
    let mut providers = BTreeMap::new();
    for name in ["acme", "other"] {
        // acme trusts the emails it verifies (Keycloak's "Trust Email"); other does not.
        let trust = if name == "acme" {
            "trust_email = true\n"
        } else {
            ""
        };
        providers.insert(
            name.to_string(),
            toml::from_str(&format!("{}{trust}", provider_toml(&upstream))).expect("provider"),
        );
    }
    let connect = ConnectConfig {
        runtime_environment: "a".into(),
        environments: BTreeMap::from([("b".to_string(), b)]),
        providers,
        redirect_origins: vec!["http://ide.test".into()],
        relay_max_bytes: 1024,
        ..ConnectConfig::default()
    };
    let app = app_with_connect(backend, connect, &|name| {
        (name == "ACME_SECRET").then(|| SECRET.to_string())
    })
    .await?;
    // `cli` may receive sign-up tokens: an administrator's choice.
    let admin = app.admin_token().await;
    let cli = app.client_uuid("test", "cli").await;
    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/clients/{cli}"),
            &admin,
            Some(json!({"attributes": {"tessera.signup.enabled": "true"}})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    Some(World {
        app,
        mock,
        upstream,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        jar: Mutex::default(),
    })
}

/// The link a client opens to sign up with `acme` for `cli`.
fn signup_link(token: &str) -> String {
    format!("/web/provider-auth/acme?signupToken={token}&client_id=cli")
}

/// The value of a hidden form field on a page.
fn hidden(html: &str, name: &str) -> String {
    html.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field: {html}"))
        .to_string()
}

fn location(r: &Resp) -> String {
    r.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location: {} {:?}", r.status, r.body))
        .to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A page that refused: a 4xx (or 502) with no redirect anywhere.
fn refused(r: &Resp, status: StatusCode, text: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert!(
        r.headers.get("location").is_none(),
        "an error never redirects"
    );
    let html = r.body.as_str().unwrap_or_default();
    assert!(html.contains(text), "page says {text:?}: {html}");
}

impl World {
    /// Alice's email is verified here (so a provider with `trust_email`
    /// could find her by it); returns an admin token and her id.
    async fn verify_alice_email(&self) -> (String, String) {
        let admin = self.app.admin_token().await;
        let alice_id = self.app.user_id("test", "alice").await;
        let r = self
            .app
            .json(
                Method::PUT,
                &format!("/admin/realms/test/users/{alice_id}"),
                &admin,
                Some(json!({"emailVerified": true})),
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
        (admin, alice_id)
    }

    async fn bob(&self) -> String {
        let r = self
            .app
            .form(
                &TestApp::token_path("test"),
                &[
                    ("grant_type", "password"),
                    ("client_id", "cli"),
                    ("username", "bob"),
                    ("password", "bob-password"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.str("access_token")
    }

    async fn alice(&self) -> String {
        let r = self.app.alice(None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.str("access_token")
    }

    /// Starts at `path`, expects a redirect to the provider and returns its
    /// authorize URL. With `bearer` (an IDE's token, or Che's), the way a
    /// real user goes: the link it gets, opened in this browser signed in as
    /// the token's user, confirmed on Tessera's page.
    async fn begin(&self, path: &str, bearer: Option<&str>) -> String {
        let link = match bearer {
            None => {
                let r = self.browser(Method::GET, path, &[]).await;
                assert_eq!(r.status, StatusCode::FOUND, "{:?}", r.body);
                let url = location(&r);
                assert!(url.starts_with(&self.upstream), "{url}");
                return url;
            }
            Some(token) => {
                let user = claims(token)["preferred_username"]
                    .as_str()
                    .expect("username")
                    .to_string();
                self.sign_in_browser(&user).await;
                self.link(path, token).await
            }
        };
        self.confirm_connect(&link).await
    }

    /// The confirmation link an IDE (POST with its bearer token) or Che
    /// (its authenticate URL) gets for `path`.
    async fn link(&self, path: &str, token: &str) -> String {
        if path.starts_with("/web/provider-auth/") {
            let req = axum::http::Request::builder()
                .method(Method::POST)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .expect("request");
            let r = self.app.send(req).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            assert_eq!(r.body["expires_in"], 300);
            r.str("url")
        } else {
            let r = self.app.get(path, Some(token)).await;
            assert_eq!(r.status, StatusCode::FOUND, "{:?}", r.body);
            location(&r)
        }
    }

    /// Signs this browser in to the test realm as `username` (the SSO
    /// cookie a login would set; logging in is tested in browser.rs).
    async fn sign_in_browser(&self, username: &str) {
        let svc = &self.app.state.services;
        let realm = svc.realms.realm("test").await.expect("realm");
        let user = self
            .app
            .store
            .user_by_username(&realm.id, username)
            .await
            .expect("db")
            .expect("user");
        let (_, secret) = svc
            .browser
            .start_sso_session(&realm, &user, &Default::default(), None)
            .await
            .expect("sso");
        self.jar
            .lock()
            .expect("jar")
            .insert("TESSERA_SSO".into(), secret);
    }

    /// Opens the connect confirmation page at `url` and presses Continue;
    /// returns the provider's authorize URL.
    async fn confirm_connect(&self, url: &str) -> String {
        let path = url.strip_prefix(PUBLIC_URL).unwrap_or(url).to_string();
        let page = self.browser(Method::GET, &path, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let html = page.body.as_str().expect("html").to_string();
        assert!(html.contains("connect-confirm"), "{html}");
        let r = self
            .browser(
                Method::POST,
                &path,
                &[("csrf", &hidden(&html, "csrf")), ("action", "connect")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
        let url = location(&r);
        assert!(url.starts_with(&self.upstream), "{url}");
        url
    }

    /// A request by this browser: its cookies go along, new ones are kept.
    async fn browser(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Resp {
        let cookies: Vec<String> = self
            .jar
            .lock()
            .expect("jar")
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut req = axum::http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header("cookie", cookies.join("; "));
        let body = if method == Method::POST {
            req = req.header("content-type", "application/x-www-form-urlencoded");
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish()
        } else {
            String::new()
        };
        let r = self
            .app
            .send(req.body(axum::body::Body::from(body)).expect("request"))
            .await;
        self.keep_cookies(&r);
        r
    }

    /// The callback lands on the sign-up confirmation page: its code, and
    /// the form's fields.
    fn signup_page(r: &Resp) -> (String, String, String) {
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let html = r.body.as_str().expect("html");
        assert!(html.contains("signup-confirm"), "{html}");
        let code = html
            .split("id=\"signup-code\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .expect("code")
            .to_string();
        (code, hidden(html, "flow"), hidden(html, "csrf"))
    }

    /// Answers the sign-up confirmation page (`confirm` or `cancel`).
    async fn answer_signup(&self, page: &Resp, action: &str) -> Resp {
        let (_, flow, csrf) = Self::signup_page(page);
        self.browser(
            Method::POST,
            "/web/provider-signup",
            &[("flow", &flow), ("csrf", &csrf), ("action", action)],
        )
        .await
    }

    fn keep_cookies(&self, r: &Resp) {
        let mut jar = self.jar.lock().expect("jar");
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().expect("cookie");
            assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax"), "{v}");
            let (name, value) = v
                .split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .expect("pair");
            jar.insert(name.to_string(), value.to_string());
        }
    }

    /// A GET by this browser (with its cookies): the provider's redirect back.
    async fn back(&self, path: &str) -> Resp {
        self.browser(Method::GET, path, &[]).await
    }

    /// The provider's answer: the callback path (and query) on Tessera.
    async fn at_provider(&self, authorize_url: &str) -> String {
        let r = self.http.get(authorize_url).send().await.expect("upstream");
        let cb = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        cb.strip_prefix(PUBLIC_URL)
            .unwrap_or_else(|| panic!("callback {cb} is on Tessera"))
            .to_string()
    }

    /// A complete sign-up round trip at `acme` for client `cli`; returns
    /// the sign-up token to poll with.
    async fn sign_up(&self) -> String {
        let t = uuid::Uuid::new_v4().to_string();
        let authorize = self
            .begin(
                &format!("/web/provider-auth/acme?signupToken={t}&client_id=cli"),
                None,
            )
            .await;
        let cb = self.at_provider(&authorize).await;
        let page = self.back(&cb).await;
        let r = self.answer_signup(&page, "confirm").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
        t
    }

    /// A connect round trip up to (not including) the callback.
    async fn fresh(&self, token: &str) -> String {
        let url = self.begin("/web/provider-auth/acme", Some(token)).await;
        self.at_provider(&url).await
    }

    fn state_key(&self) -> tessera_keys::MacKey {
        self.app.master.mac_key("provider-state")
    }

    async fn connection(&self, user: &str) -> Option<tessera_core::ProviderConnection> {
        let id = self.app.user_id("test", user).await;
        self.app
            .store
            .provider_connection(&id, "acme")
            .await
            .expect("db")
    }
}

async fn connect_stores_sealed_tokens_publishes_and_disconnects(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let token = w.alice().await;
    let mut events = w.app.state.services.sessions.subscribe();
    let authorize = w.begin("/web/provider-auth/acme", Some(&token)).await;
    assert_eq!(
        query_param(&authorize, "redirect_uri").as_deref(),
        Some(format!("{PUBLIC_URL}/no-auth/provider-token/acme").as_str())
    );
    assert_eq!(
        query_param(&authorize, "scope").as_deref(),
        Some("read:user repo")
    );
    let state = query_param(&authorize, "state").expect("state");
    let claims: StateClaims =
        serde_json::from_value(w.state_key().verify_jwt(&state).expect("signed")).expect("claims");
    assert_eq!((claims.env.as_str(), claims.prv.as_str()), ("a", "acme"));
    assert_eq!(claims.flow, Flow::Connect);
    assert!(claims.exp - tessera_core::time::now_secs() <= 600);

    let callback = w.at_provider(&authorize).await;
    let r = w.back(&callback).await;
    assert_eq!(r.status, StatusCode::FOUND, "{:?}", r.body);
    assert_eq!(
        location(&r),
        format!("{PUBLIC_URL}/web/provider-connected/acme")
    );
    let page = w.app.get("/web/provider-connected/acme", None).await;
    assert_eq!(page.status, StatusCode::OK);

    let pushed = loop {
        match events.recv().await.expect("event") {
            ServerEvent::ToUser { event, data, .. } if event == "providerConnected" => break data,
            _ => continue,
        }
    };
    assert_eq!(pushed["provider"], "acme");
    let upstream_token = pushed["accessToken"].as_str().expect("token").to_string();
    assert!(w.mock.lock().expect("mock").live.contains(&upstream_token));
    assert!(pushed["expiresAt"].as_i64().expect("expiry") > tessera_core::time::now_ms());
    assert!(
        !page.body.as_str().unwrap_or("").contains(&upstream_token),
        "the success page shows no token"
    );

    // Stored sealed: neither token appears in the row.
    let stored = w.connection("alice").await.expect("connected");
    assert_eq!(stored.subject, "id-octo");
    assert_eq!(stored.scopes, vec!["read:user", "repo"]);
    assert!(!stored.secret.contains("up-at-") && !stored.secret.contains("up-rt-"));
    assert!(!format!("{stored:?}").contains(&upstream_token));

    // Listed to the user (without the token); Che's API returns the token.
    let list = w
        .app
        .get("/realms/test/account/providers", Some(&token))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body[0]["provider"], "acme");
    assert_eq!(list.body[0]["subject"], "id-octo");
    assert!(!list.body.to_string().contains("up-at-"));
    let che = w
        .app
        .get("/api/oauth/token?oauth_provider=acme", Some(&token))
        .await;
    assert_eq!(che.status, StatusCode::OK, "{:?}", che.body);
    assert_eq!(che.str("token"), upstream_token);
    assert_eq!(che.str("scope"), "read:user repo");

    // The callback cannot be replayed.
    let replay = w.back(&callback).await;
    refused(
        &replay,
        StatusCode::BAD_REQUEST,
        "expired or was already used",
    );

    // Disconnecting deletes the token and revokes it upstream.
    let gone = w
        .app
        .json(
            Method::DELETE,
            "/realms/test/account/providers/acme",
            &token,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{:?}", gone.body);
    assert!(w.connection("alice").await.is_none());
    {
        let m = w.mock.lock().expect("mock");
        assert!(m.revoked.contains(&upstream_token), "{:?}", m.revoked);
        assert!(m.revoked.iter().any(|t| t.starts_with("up-rt-")));
        assert!(!m.live.contains(&upstream_token));
    }
    let again = w
        .app
        .json(
            Method::DELETE,
            "/realms/test/account/providers/acme",
            &token,
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error(), "not_connected");
    let che = w
        .app
        .get("/api/oauth/token?oauth_provider=acme", Some(&token))
        .await;
    assert_eq!(che.status, StatusCode::NOT_FOUND);

    // Connecting again goes through the same confirmation.
    w.begin("/web/provider-auth/acme", Some(&token)).await;
}

async fn bad_callbacks_store_nothing(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let token = w.alice().await;
    let key = w.state_key();
    let cb = w.fresh(&token).await;
    let state = query_param(&format!("{PUBLIC_URL}{cb}"), "state").expect("state");
    let code = query_param(&format!("{PUBLIC_URL}{cb}"), "code").expect("code");
    let claims: StateClaims =
        serde_json::from_value(key.verify_jwt(&state).expect("signed")).expect("claims");
    let signed = |c: &StateClaims| key.sign_jwt(c);
    let mut tampered = state.clone();
    tampered.pop();
    tampered.push(if state.ends_with('A') { 'B' } else { 'A' });
    let expired = signed(&StateClaims {
        exp: tessera_core::time::now_secs() - 1,
        ..claims.clone()
    });
    let foreign_env = {
        let mut parts: Vec<String> = state.split('.').map(str::to_string).collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("json");
        payload["env"] = json!("zzz");
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        parts.join(".")
    };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let calls_before = w.mock.lock().expect("mock").token_calls;
    for (path, status, text) in [
        (
            format!("/no-auth/provider-token/acme?code={code}"),
            StatusCode::BAD_REQUEST,
            "missing its state",
        ),
        (
            format!(
                "/no-auth/provider-token/acme?code={code}&state={}",
                enc(&tampered)
            ),
            StatusCode::BAD_REQUEST,
            "not valid",
        ),
        (
            format!("/no-auth/provider-token/acme?code={code}&state=not-a-jwt"),
            StatusCode::BAD_REQUEST,
            "not valid",
        ),
        (
            format!(
                "/no-auth/provider-token/acme?code={code}&state={}",
                enc(&expired)
            ),
            StatusCode::BAD_REQUEST,
            "expired",
        ),
        (
            format!(
                "/no-auth/provider-token/other?code={code}&state={}",
                enc(&state)
            ),
            StatusCode::BAD_REQUEST,
            "issued for acme",
        ),
        (
            format!("/api/oauth/callback?code={code}&state={}", enc(&state)),
            StatusCode::BAD_REQUEST,
            "not valid",
        ),
        (
            format!(
                "/no-auth/provider-token/acme?code={code}&state={}",
                enc(&foreign_env)
            ),
            StatusCode::BAD_REQUEST,
            "environment",
        ),
        (
            format!(
                "/no-auth/provider-token/nope?code={code}&state={}",
                enc(&state)
            ),
            StatusCode::BAD_REQUEST,
            "issued for acme",
        ),
    ] {
        let r = w.back(&path).await;
        refused(&r, status, text);
    }
    assert_eq!(
        w.mock.lock().expect("mock").token_calls,
        calls_before,
        "no exchange was attempted"
    );
    assert!(w.connection("alice").await.is_none());

    // Another browser (no binding cookie, or a wrong one) is refused, and
    // the round trip is dead afterwards: a code that reached another
    // browser is never redeemed, not even by the browser that started it.
    refused(
        &w.app.get(&cb, None).await,
        StatusCode::BAD_REQUEST,
        "started in another browser",
    );
    refused(&w.back(&cb).await, StatusCode::BAD_REQUEST, "already used");
    let cb = w.fresh(&token).await;
    let cookie_name = w
        .jar
        .lock()
        .expect("jar")
        .keys()
        .find(|k| k.starts_with("tessera_provider_"))
        .expect("binding cookie")
        .clone();
    let forged = axum::http::Request::builder()
        .uri(&cb)
        .header("cookie", format!("{cookie_name}=not-the-secret"))
        .body(axum::body::Body::empty())
        .expect("request");
    refused(
        &w.app.send(forged).await,
        StatusCode::BAD_REQUEST,
        "started in another browser",
    );
    refused(&w.back(&cb).await, StatusCode::BAD_REQUEST, "already used");
    assert!(w.connection("alice").await.is_none());
    // A round trip that stays in its browser works.
    let ok = w.back(&w.fresh(&token).await).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{:?}", ok.body);
    assert!(w.connection("alice").await.is_some());
    let gone = w
        .app
        .json(
            Method::DELETE,
            "/realms/test/account/providers/acme",
            &token,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);

    // The provider refuses, or the code does not exchange.
    let cb = w.fresh(&token).await;
    let state = query_param(&format!("{PUBLIC_URL}{cb}"), "state").expect("state");
    let r = w
        .back(&format!(
            "/no-auth/provider-token/acme?error=access_denied&state={}",
            enc(&state)
        ))
        .await;
    refused(&r, StatusCode::FORBIDDEN, "access_denied");
    let r = w.back(&cb).await;
    refused(&r, StatusCode::BAD_REQUEST, "already used");
    let cb = w.fresh(&token).await;
    let state = query_param(&format!("{PUBLIC_URL}{cb}"), "state").expect("state");
    let r = w
        .back(&format!(
            "/no-auth/provider-token/acme?code=bogus&state={}",
            enc(&state)
        ))
        .await;
    refused(&r, StatusCode::BAD_REQUEST, "did not accept");
    assert!(w.connection("alice").await.is_none());

    // A URL never says who connects: a plain link goes to the confirmation
    // page (whoever is signed in there), a token in it is refused, and the
    // IDE's link needs its bearer token.
    let r = w.app.get("/web/provider-auth/acme", None).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        location(&r),
        format!("{PUBLIC_URL}/realms/test/account/connect/acme")
    );
    refused(
        &w.app
            .get(
                &format!("/web/provider-auth/acme?access_token={token}"),
                None,
            )
            .await,
        StatusCode::BAD_REQUEST,
        "cannot say who",
    );
    let r = w
        .app
        .send(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/web/provider-auth/acme")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    refused(
        &w.app.get("/web/provider-auth/nope", Some(&token)).await,
        StatusCode::NOT_FOUND,
        "Unknown provider",
    );

    // Another user cannot take an identity that is already connected.
    let authorize = w.begin("/web/provider-auth/acme", Some(&token)).await;
    let cb = w.at_provider(&authorize).await;
    assert_eq!(w.back(&cb).await.status, StatusCode::FOUND);
    let bob = w.bob().await;
    let authorize = w.begin("/web/provider-auth/acme", Some(&bob)).await;
    let cb = w.at_provider(&authorize).await;
    refused(
        &w.back(&cb).await,
        StatusCode::CONFLICT,
        "already connected to another user",
    );
    assert!(w.connection("bob").await.is_none());
}

async fn callbacks_for_other_environments_are_forwarded(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let claims = StateClaims {
        env: "b".into(),
        jti: "j".into(),
        exp: tessera_core::time::now_secs() + 60,
        prv: "acme".into(),
        flow: Flow::Connect,
        realm: "r".into(),
        sub: Some("u".into()),
        sut: None,
        ret: None,
        bnd: None,
    };
    // b's state is signed by b's key; a cannot (and need not) check it.
    let state = tessera_keys::MasterKey::generate()
        .mac_key("provider-state")
        .sign_jwt(&claims);
    let path = format!("/no-auth/provider-token/acme?code=c0de&state={state}");
    let r = w.back(&path).await;
    assert_eq!(r.status, StatusCode::FOUND, "{:?}", r.body);
    let b = w.app.state.connect.environment("b").expect("b").to_string();
    assert_eq!(location(&r), format!("{b}{path}"));
    let che = format!("/api/oauth/callback?code=c0de&state={state}");
    assert_eq!(location(&w.app.get(&che, None).await), format!("{b}{che}"));
    // A state naming this environment but signed elsewhere is refused.
    let mine = tessera_keys::MasterKey::generate()
        .mac_key("provider-state")
        .sign_jwt(&StateClaims {
            env: "a".into(),
            ..claims
        });
    refused(
        &w.back(&format!(
            "/no-auth/provider-token/acme?code=c0de&state={mine}"
        ))
        .await,
        StatusCode::BAD_REQUEST,
        "not valid",
    );
}

async fn signup_polls_then_returns_user_and_tokens_once(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    {
        let mut m = w.mock.lock().expect("mock");
        m.login = "newbie".into();
        m.email = Some("newbie@upstream.test".into());
        m.email_verified = true;
    }
    let signup = uuid::Uuid::new_v4().to_string();
    let poll = |t: String| {
        let app = &w.app;
        async move {
            app.get(&format!("/no-auth/check-signup?token={t}"), None)
                .await
        }
    };
    let start = format!("/web/provider-auth/acme?signupToken={signup}&client_id=cli");
    let authorize = w.begin(&start, None).await;
    let pending = poll(signup.clone()).await;
    assert_eq!(pending.status, StatusCode::ACCEPTED);
    assert_eq!(pending.error(), "signup_pending");
    // The same sign-up token cannot start a second round trip.
    refused(
        &w.app.get(&start, None).await,
        StatusCode::CONFLICT,
        "already used",
    );

    let cb = w.at_provider(&authorize).await;
    let page = w.back(&cb).await;
    // The browser confirms on Tessera's page, which shows the code the
    // polling app shows; until then the poll only says "pending".
    let (code, _, _) = World::signup_page(&page);
    let pending = poll(signup.clone()).await;
    assert_eq!(pending.status, StatusCode::ACCEPTED);
    assert_eq!(pending.body["user_code"], json!(code));
    let html = page.body.as_str().expect("html");
    assert!(
        html.contains("creates a new account") && html.contains("newbie"),
        "{html}"
    );
    // Nothing exists yet: no account, no connection.
    let test_realm = w
        .app
        .state
        .services
        .realms
        .realm("test")
        .await
        .expect("realm");
    assert!(w
        .app
        .store
        .user_by_username(&test_realm.id, "newbie")
        .await
        .expect("db")
        .is_none());
    let r = w.answer_signup(&page, "confirm").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    assert_eq!(
        location(&r),
        format!("{PUBLIC_URL}/web/provider-connected/acme")
    );
    // Sign-up switched off (or the account made an admin) between the
    // confirmation and the poll: nothing is released.
    set_signup(&w, "cli", None).await;
    let off = poll(signup.clone()).await;
    assert_eq!(
        (off.status, off.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    set_signup(&w, "cli", Some("true")).await;
    // The form is spent with it.
    refused(
        &w.answer_signup(&page, "confirm").await,
        StatusCode::BAD_REQUEST,
        "already used",
    );
    let done = poll(signup.clone()).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["provider"], "acme");
    assert_eq!(done.body["user"]["username"], "newbie");
    assert_eq!(done.body["user"]["email"], "newbie@upstream.test");
    assert_eq!(done.body["user"]["emailVerified"], true);
    assert_eq!(done.body["user"]["providers"], json!(["acme"]));
    let access = done.str("access_token");
    assert!(done.body["refresh_token"].is_string());
    let info = w
        .app
        .get(
            "/realms/test/protocol/openid-connect/userinfo",
            Some(&access),
        )
        .await;
    assert_eq!(info.status, StatusCode::OK, "{:?}", info.body);
    assert_eq!(info.body["preferred_username"], "newbie");
    assert_eq!(claims(&access)["azp"], "cli");
    let used = poll(signup.clone()).await;
    assert_eq!(
        (used.status, used.error()),
        (StatusCode::GONE, "signup_used")
    );
    let unknown = poll(uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (StatusCode::NOT_FOUND, "signup_not_found")
    );
    let missing = w.app.get("/no-auth/check-signup", None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);

    // Signing up again with the same upstream identity finds the same user.
    let again = uuid::Uuid::new_v4().to_string();
    let authorize = w.begin(&signup_link(again.as_str()), None).await;
    let cb = w.at_provider(&authorize).await;
    let page = w.back(&cb).await;
    assert!(page
        .body
        .as_str()
        .expect("html")
        .contains("your account <strong>newbie</strong>"));
    assert_eq!(
        w.answer_signup(&page, "confirm").await.status,
        StatusCode::SEE_OTHER
    );
    let second = poll(again).await;
    assert_eq!(second.body["user"]["id"], done.body["user"]["id"]);

    // A verified email matches a user whose email is verified here too.
    let (_, alice_id) = w.verify_alice_email().await;
    {
        let mut m = w.mock.lock().expect("mock");
        m.login = "alice-upstream".into();
        m.email = Some("alice@example.test".into());
    }
    let t = w.sign_up().await;
    assert_eq!(poll(t).await.body["user"]["id"], json!(alice_id));

    // A provider without trust_email never links by email, verified or not.
    let other_t = uuid::Uuid::new_v4().to_string();
    let authorize = w
        .begin(
            &format!("/web/provider-auth/other?signupToken={other_t}&client_id=cli"),
            None,
        )
        .await;
    let cb = w.at_provider(&authorize).await;
    let cb = cb.replacen(
        "/no-auth/provider-token/acme",
        "/no-auth/provider-token/other",
        1,
    );
    let page = w.back(&cb).await;
    assert!(page
        .body
        .as_str()
        .expect("html")
        .contains("creates a new account"));
    w.answer_signup(&page, "confirm").await;
    assert_ne!(poll(other_t).await.body["user"]["id"], json!(alice_id));

    // An unverified email never matches: a new user.
    {
        let mut m = w.mock.lock().expect("mock");
        m.login = "mallory".into();
        m.email = Some("bob@example.test".into());
        m.email_verified = false;
    }
    let t = w.sign_up().await;
    let mallory = poll(t).await;
    assert_eq!(mallory.body["user"]["username"], "mallory");
    assert_ne!(
        mallory.body["user"]["id"],
        json!(w.app.user_id("test", "bob").await)
    );

    // The provider refuses: the poll says so, once and for good.
    w.mock.lock().expect("mock").deny = true;
    let t = uuid::Uuid::new_v4().to_string();
    let authorize = w.begin(&signup_link(t.as_str()), None).await;
    refused(
        &w.back(&w.at_provider(&authorize).await).await,
        StatusCode::FORBIDDEN,
        "access_denied",
    );
    let denied = poll(t.clone()).await;
    assert_eq!(
        (denied.status, denied.error()),
        (StatusCode::FORBIDDEN, "access_denied")
    );

    // Expired sign-ups say so.
    let old = uuid::Uuid::new_v4().to_string();
    let realm = w
        .app
        .store
        .realm_by_name("test")
        .await
        .expect("db")
        .expect("realm");
    let cli = w
        .app
        .store
        .client_by_client_id(&realm.id, "cli")
        .await
        .expect("db")
        .expect("cli");
    let now = tessera_core::time::now_ms();
    w.app
        .store
        .insert_signup(&tessera_core::Signup {
            hash: tessera_core::TokenHash::of(&old),
            realm_id: realm.id,
            client_id: cli.id,
            provider: "acme".into(),
            user_id: None,
            error: None,
            created_at: now - 700_000,
            expires_at: now - 100_000,
            completed_at: None,
            spent_at: None,
        })
        .await
        .expect("insert");
    let expired = poll(old).await;
    assert_eq!(
        (expired.status, expired.error()),
        (StatusCode::GONE, "expired_token")
    );

    // Sign-ups need a UUID and a public client of the default realm.
    for bad in [
        format!(
            "/web/provider-auth/acme?signupToken={}&client_id=app",
            uuid::Uuid::new_v4()
        ),
        format!(
            "/web/provider-auth/acme?signupToken={}",
            uuid::Uuid::new_v4()
        ),
        "/web/provider-auth/acme?signupToken=not-a-uuid&client_id=cli".to_string(),
    ] {
        refused(&w.app.get(&bad, None).await, StatusCode::BAD_REQUEST, "");
    }
}

async fn che_oauth_api(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let token = w.alice().await;
    let list = w.app.get("/api/oauth", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body[0]["name"], "acme");
    assert_eq!(
        list.body[0]["endpointUrl"],
        format!("{}/authorize", w.upstream)
    );
    assert!(list.body[0]["links"][0]["href"]
        .as_str()
        .expect("href")
        .ends_with("/api/oauth/authenticate?oauth_provider=acme"));

    let foreign =
        "/api/oauth/authenticate?oauth_provider=acme&redirect_after_login=https://evil.test/x";
    refused(
        &w.app.get(foreign, Some(&token)).await,
        StatusCode::BAD_REQUEST,
        "not an allowed origin",
    );
    let sneaky = "/api/oauth/authenticate?oauth_provider=acme&redirect_after_login=http://ide.test.evil.test/";
    refused(
        &w.app.get(sneaky, Some(&token)).await,
        StatusCode::BAD_REQUEST,
        "not an allowed origin",
    );
    let unauthenticated = w
        .app
        .get(
            "/api/oauth/authenticate?oauth_provider=acme&redirect_after_login=http://ide.test/",
            None,
        )
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);

    let authorize = w
        .begin(
            &format!("/api/oauth/authenticate?oauth_provider=acme&redirect_after_login=http://ide.test/back&token={token}"),
            Some(&token),
        )
        .await;
    assert_eq!(
        query_param(&authorize, "redirect_uri").as_deref(),
        Some(format!("{PUBLIC_URL}/api/oauth/callback").as_str())
    );
    let cb = w.at_provider(&authorize).await;
    assert!(cb.starts_with("/api/oauth/callback?"), "{cb}");
    // Che's state is refused on the CodeStream callback.
    let wrong = cb.replacen("/api/oauth/callback", "/no-auth/provider-token/acme", 1);
    refused(
        &w.back(&wrong).await,
        StatusCode::BAD_REQUEST,
        "issued for acme",
    );
    let r = w.back(&cb).await;
    assert_eq!(r.status, StatusCode::FOUND, "{:?}", r.body);
    assert_eq!(location(&r), "http://ide.test/back");

    let got = w
        .app
        .get("/api/oauth/token?oauth_provider=acme", Some(&token))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    let first = got.str("token");
    // A token about to expire is refreshed when read.
    w.mock.lock().expect("mock").expires_in = 10;
    let authorize = w
        .begin(
            &format!("/api/oauth/authenticate?oauth_provider=acme&redirect_after_login=http://ide.test/back&token={token}"),
            Some(&token),
        )
        .await;
    assert_eq!(
        w.back(&w.at_provider(&authorize).await).await.status,
        StatusCode::FOUND
    );
    let short = w
        .app
        .get("/api/oauth/token?oauth_provider=acme", Some(&token))
        .await
        .str("token");
    assert_ne!(short, first);
    assert_eq!(w.mock.lock().expect("mock").refreshes, 1, "refreshed once");
    assert!(w.mock.lock().expect("mock").live.contains(&short));

    // Expired, and the refresh fails (revoked upstream): no expired token is
    // handed out; the client is told to connect again.
    w.mock.lock().expect("mock").expires_in = 1;
    let authorize = w
        .begin(
            "/api/oauth/authenticate?oauth_provider=acme&redirect_after_login=http://ide.test/back",
            Some(&token),
        )
        .await;
    assert_eq!(
        w.back(&w.at_provider(&authorize).await).await.status,
        StatusCode::FOUND
    );
    w.mock.lock().expect("mock").live.clear();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let dead = w
        .app
        .get("/api/oauth/token?oauth_provider=acme", Some(&token))
        .await;
    assert_eq!(
        (dead.status, dead.error()),
        (StatusCode::CONFLICT, "reconnect_required")
    );
    assert!(dead.body["error_description"]
        .as_str()
        .is_some_and(|d| d.contains("connect acme again")));

    let missing = w.app.get("/api/oauth/token", Some(&token)).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let del_query = w
        .app
        .raw(
            Method::DELETE,
            &format!("/api/oauth/token?oauth_provider=acme&token={token}"),
            None,
            None,
            vec![],
        )
        .await;
    assert_eq!(
        del_query.status,
        StatusCode::UNAUTHORIZED,
        "no query tokens on changes"
    );
    let del = w
        .app
        .json(
            Method::DELETE,
            "/api/oauth/token?oauth_provider=acme",
            &token,
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{:?}", del.body);
    let after = w
        .app
        .get("/api/oauth/token?oauth_provider=acme", Some(&token))
        .await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
}

async fn relay_forwards_only_to_configured_environments(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let body = "payload=%7B%22type%22%3A%22block_actions%22%7D";
    let r = w
        .app
        .send(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/relay/b/integrations/slack/interactive?team=T1")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-signature", "v0=abc")
                .header("cookie", "TESSERA_SSO=browser-secret")
                .body(axum::body::Body::from(body))
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.headers["x-echo"], "yes");
    assert_eq!(r.body["method"], "POST");
    assert_eq!(r.body["path"], "/integrations/slack/interactive");
    assert_eq!(r.body["query"], "team=T1");
    assert_eq!(r.body["signature"], "v0=abc");
    assert_eq!(r.body["contentType"], "application/x-www-form-urlencoded");
    assert_eq!(r.body["body"], body);
    assert_eq!(
        r.body["cookie"],
        Value::Null,
        "a browser's cookies stay here"
    );
    assert_eq!(r.body["relayed"], "a");
    assert!(
        r.headers.get("set-cookie").is_none(),
        "b's cookies never land here"
    );
    assert_eq!(r.headers["content-security-policy"], "sandbox");
    let put = w
        .app
        .raw(
            Method::PUT,
            "/relay/b/x",
            Some("text/plain"),
            None,
            b"hi".to_vec(),
        )
        .await;
    assert_eq!(
        (put.body["method"].as_str(), put.body["body"].as_str()),
        (Some("PUT"), Some("hi"))
    );

    for path in [
        "/relay/b/relay/b/hooks",
        "/relay/b/RELAY/b/hooks",
        "/relay/b/%2e%2e/admin",
        "/relay/b/x/../y",
        "/relay/b/x/%2E/y",
    ] {
        let r = w.app.raw(Method::POST, path, None, None, vec![]).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{path}"
        );
    }
    let looped = w
        .app
        .send(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/relay/b/hooks")
                .header("x-tessera-relayed", "b")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        looped.status,
        StatusCode::BAD_REQUEST,
        "a relayed request is not relayed again"
    );
    let unknown = w
        .app
        .raw(Method::POST, "/relay/zzz/hooks", None, None, vec![])
        .await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (StatusCode::NOT_FOUND, "unknown_environment")
    );
    let itself = w
        .app
        .raw(Method::POST, "/relay/a/hooks", None, None, vec![])
        .await;
    assert_eq!(
        itself.status,
        StatusCode::NOT_FOUND,
        "only other environments"
    );
    let big = w
        .app
        .raw(
            Method::POST,
            "/relay/b/hooks",
            Some("text/plain"),
            None,
            vec![b'x'; 2048],
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// An attacker picks a sign-up token and sends its link to a victim (an
/// administrator, say). The victim's browser makes the round trip; the
/// attacker's poll never gets anything without the victim confirming, the
/// attacker cannot confirm for them, and an admin account is never reached.
async fn signup_link_takeover_is_refused(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let poll = |t: String| {
        let app = &w.app;
        async move {
            app.get(&format!("/no-auth/check-signup?token={t}"), None)
                .await
        }
    };
    // The victim (alice) has a verified email the provider verifies too.
    let (admin, alice_id) = w.verify_alice_email().await;
    {
        let mut m = w.mock.lock().expect("mock");
        m.login = "alice-upstream".into();
        m.email = Some("alice@example.test".into());
        m.email_verified = true;
    }
    let attacker_token = uuid::Uuid::new_v4().to_string();
    let link = format!("/web/provider-auth/acme?signupToken={attacker_token}&client_id=cli");
    // The victim's browser follows the link through the provider.
    let authorize = w.begin(&link, None).await;
    let page = w.back(&w.at_provider(&authorize).await).await;
    let (code, flow, csrf) = World::signup_page(&page);
    // The attacker polls: pending, never the victim's tokens.
    for _ in 0..3 {
        let r = poll(attacker_token.clone()).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::ACCEPTED, "signup_pending")
        );
        assert!(r.body.get("access_token").is_none());
    }
    // Even knowing the form's fields, the attacker's browser (no binding
    // cookie) cannot confirm it.
    let forged = w
        .app
        .send(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/web/provider-signup")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(format!(
                    "flow={flow}&csrf={csrf}&action=confirm"
                )))
                .expect("request"),
        )
        .await;
    refused(&forged, StatusCode::BAD_REQUEST, "another browser");
    // The victim sees a code their app does not show, and cancels.
    assert_eq!(code.len(), 9);
    let r = w.answer_signup(&page, "cancel").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = poll(attacker_token).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "access_denied")
    );
    assert!(w.connection("alice").await.is_none(), "nothing was linked");

    // An administrator's account is never reached by a sign-up.
    let r = w
        .app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/users/{alice_id}"),
            &admin,
            Some(json!({"realmRoles": ["admin"]})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let mut stored = w
        .app
        .store
        .user(
            &w.app
                .state
                .services
                .realms
                .realm("test")
                .await
                .expect("realm")
                .id,
            &alice_id,
        )
        .await
        .expect("db")
        .expect("alice");
    if !stored.roles.iter().any(|r| r == "admin") {
        stored.roles.push("admin".into());
        w.app.store.update_user(&stored).await.expect("update");
    }
    let t = uuid::Uuid::new_v4().to_string();
    let authorize = w.begin(&signup_link(t.as_str()), None).await;
    let r = w.back(&w.at_provider(&authorize).await).await;
    refused(&r, StatusCode::FORBIDDEN, "cannot be signed in to this way");
    let r = poll(t).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "access_denied")
    );

    // Nor when the admin's provider identity is already connected.
    w.app
        .store
        .put_provider_connection(&tessera_core::ProviderConnection {
            realm_id: stored.realm_id.clone(),
            user_id: alice_id.clone(),
            provider: "acme".into(),
            subject: "id-linked-admin".into(),
            secret: "sealed".into(),
            scopes: vec![],
            expires_at: None,
            created_at: 0,
            updated_at: 0,
        })
        .await
        .expect("connect");
    {
        let mut m = w.mock.lock().expect("mock");
        m.login = "linked-admin".into();
        m.email = None;
    }
    let t = uuid::Uuid::new_v4().to_string();
    let authorize = w.begin(&signup_link(t.as_str()), None).await;
    let r = w.back(&w.at_provider(&authorize).await).await;
    refused(&r, StatusCode::FORBIDDEN, "cannot be signed in to this way");
    assert_eq!(poll(t).await.error(), "access_denied");

    // The attacker starts in their own browser and gets the victim to pass
    // the provider: the victim's browser lands on "another browser", and
    // the URL it got is dead, so the attacker cannot replay it at home.
    {
        let mut m = w.mock.lock().expect("mock");
        m.login = "victim".into();
    }
    let t = uuid::Uuid::new_v4().to_string();
    let authorize = w.begin(&signup_link(t.as_str()), None).await;
    let cb = w.at_provider(&authorize).await;
    refused(
        &w.app.get(&cb, None).await,
        StatusCode::BAD_REQUEST,
        "another browser",
    );
    refused(&w.back(&cb).await, StatusCode::BAD_REQUEST, "already used");
    let r = poll(t).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "access_denied")
    );

    // Only clients an administrator enabled may receive sign-up tokens.
    set_signup(&w, "cli", None).await;
    refused(
        &w.app
            .get(
                &format!(
                    "/web/provider-auth/acme?signupToken={}&client_id=cli",
                    uuid::Uuid::new_v4()
                ),
                None,
            )
            .await,
        StatusCode::BAD_REQUEST,
        "sign-up enabled",
    );
}

async fn set_signup(w: &World, client: &str, value: Option<&str>) {
    let admin = w.app.admin_token().await;
    let id = w.app.client_uuid("test", client).await;
    let attributes = match value {
        Some(v) => json!({"tessera.signup.enabled": v}),
        None => json!({}),
    };
    let r = w
        .app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/clients/{id}"),
            &admin,
            Some(json!({"attributes": attributes})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
}

/// An attacker's connect link (made with the attacker's token) opened by a
/// victim connects nothing: the browser's own sign-in must be the link's
/// user; the old `?access_token=` link is refused outright.
async fn connect_link_takeover_is_refused(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let bob = w.bob().await;
    for path in [
        "/web/provider-auth/acme".to_string(),
        "/api/oauth/authenticate?oauth_provider=acme&redirect_after_login=http://ide.test/back"
            .to_string(),
    ] {
        // The attacker makes a link; the victim (alice) opens it signed in.
        let link = w.link(&path, &bob).await;
        w.sign_in_browser("alice").await;
        let page_path = link.strip_prefix(PUBLIC_URL).expect("ours").to_string();
        let r = w.browser(Method::GET, &page_path, &[]).await;
        refused(&r, StatusCode::FORBIDDEN, "another account");
        // Not signed in: the login page first, and once the victim has
        // signed in (as themselves), the same refusal.
        w.jar.lock().expect("jar").remove("TESSERA_SSO");
        let r = w.browser(Method::GET, &page_path, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.as_str().expect("html").contains("login_state"));
        w.sign_in_browser("alice").await;
        let r = w.browser(Method::GET, &page_path, &[]).await;
        refused(&r, StatusCode::FORBIDDEN, "another account");
        // Nor can the victim's browser post the confirmation for that link.
        let page = w.browser(Method::GET, "/realms/test/account", &[]).await;
        let csrf = hidden(page.body.as_str().expect("html"), "csrf");
        let r = w
            .browser(
                Method::POST,
                &page_path,
                &[("csrf", &csrf), ("action", "connect")],
            )
            .await;
        refused(&r, StatusCode::FORBIDDEN, "another account");
    }
    // The legacy link with the attacker's token in it does nothing.
    refused(
        &w.app
            .get(&format!("/web/provider-auth/acme?access_token={bob}"), None)
            .await,
        StatusCode::BAD_REQUEST,
        "cannot say who",
    );
    assert!(w.connection("alice").await.is_none());
    assert!(w.connection("bob").await.is_none());
    // A link works once, for its own user.
    let link = w.link("/web/provider-auth/acme", &bob).await;
    w.sign_in_browser("bob").await;
    w.confirm_connect(&link).await;
    let page_path = link.strip_prefix(PUBLIC_URL).expect("ours").to_string();
    let page = w.browser(Method::GET, &page_path, &[]).await;
    let html = page.body.as_str().expect("html").to_string();
    let r = w
        .browser(
            Method::POST,
            &page_path,
            &[("csrf", &hidden(&html, "csrf")), ("action", "connect")],
        )
        .await;
    refused(&r, StatusCode::BAD_REQUEST, "already used");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await }
        )*}
        mod postgres {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await }
        )*}
    };
}

on_both!(
    connect_stores_sealed_tokens_publishes_and_disconnects,
    bad_callbacks_store_nothing,
    callbacks_for_other_environments_are_forwarded,
    signup_polls_then_returns_user_and_tokens_once,
    che_oauth_api,
    relay_forwards_only_to_configured_environments,
    signup_link_takeover_is_refused,
    connect_link_takeover_is_refused,
);
