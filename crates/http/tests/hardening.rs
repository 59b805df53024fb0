//! Attacks an audit found, each reproduced through the router: a disabled
//! client's tokens, Keycloak's PKCE client attribute, device-code and
//! user-code guessing, and password spraying across two nodes. Limits are
//! set low here so the tests stay short; each fails without its rule.

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp, APP_SECRET};
use serde_json::json;

/// Low limits: 4 failed logins per address, 3 device requests and 3 wrong
/// user codes per address, per minute.
async fn app(backend: Backend) -> Option<TestApp> {
    common::app_in_realm_with(backend, "test", |c| {
        c.throttle.address_max_failures = 4;
        c.throttle.device_requests_per_address = 3;
        c.throttle.user_code_failures_per_address = 3;
        c.throttle.device_requests_per_realm = 5;
        c.throttle.user_code_failures_per_realm = 6;
        c.catalog_ttl_ms = CATALOG_TTL_MS;
        c.session_cache_ms = SESSION_CACHE_MS;
    })
    .await
}

/// How long a node may trust its cached realms and clients here.
const CATALOG_TTL_MS: u64 = 400;

/// How long a node trusts its cached live sessions here.
const SESSION_CACHE_MS: u64 = 400;

async fn set_client(app: &TestApp, client_id: &str, rep: serde_json::Value) {
    let admin = app.admin_token().await;
    let id = app.client_uuid("test", client_id).await;
    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/clients/{id}"),
            &admin,
            Some(rep),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
}

async fn disabling_a_client_ends_its_tokens_everywhere(app: TestApp) {
    let login = app.alice(None).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let access = login.str("access_token");
    let refresh = login.str("refresh_token");
    let userinfo = "/realms/test/protocol/openid-connect/userinfo";
    let introspect = "/realms/test/protocol/openid-connect/token/introspect";
    let mut events = app.state.services.sessions.subscribe();
    assert_eq!(
        app.get(userinfo, Some(&access)).await.status,
        StatusCode::OK
    );

    set_client(&app, "app", json!({"enabled": false})).await;
    // The session ended (its sockets were told) ...
    match events.recv().await.expect("event") {
        tessera_oauth::events::ServerEvent::SessionRevoked { .. } => {}
        other => panic!("expected SessionRevoked, got {other:?}"),
    }
    // ... so its tokens are dead at userinfo, the account API and introspection.
    assert_eq!(
        app.get(userinfo, Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/realms/test/account/sessions", Some(&access))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Another confidential client of the realm asks (the disabled one cannot).
    let admin = app.admin_token().await;
    let r = app
        .json(
            Method::POST,
            "/admin/realms/test/clients",
            &admin,
            Some(
                json!({"clientId": "rs", "secret": "rs-secret-0123456789", "publicClient": false}),
            ),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    for token in [&access, &refresh] {
        let r = app
            .form_auth(
                introspect,
                &[("token", token)],
                Some(&common::basic("rs", "rs-secret-0123456789")),
            )
            .await;
        assert_eq!(r.body["active"], false, "{:?}", r.body);
    }
    // Re-enabling it revives nothing; new sign-ins work again.
    set_client(&app, "app", json!({"enabled": true})).await;
    assert_eq!(
        app.get(userinfo, Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.alice(None).await.status, StatusCode::OK);
}

async fn pkce_client_attribute_is_enforced(app: TestApp) {
    let auth = "/realms/test/protocol/openid-connect/auth?client_id=app&response_type=code&scope=openid&state=s1&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb";
    // Without the attribute a confidential client may skip PKCE.
    assert_eq!(app.get(auth, None).await.status, StatusCode::OK);
    set_client(
        &app,
        "app",
        json!({"attributes": {"pkce.code.challenge.method": "S256"}}),
    )
    .await;
    let r = app.get(auth, None).await;
    assert_eq!(r.status, StatusCode::FOUND, "{:?}", r.body);
    let to = r.headers["location"].to_str().expect("location");
    assert!(
        to.starts_with("http://127.0.0.1:9999/cb?") && to.contains("error=invalid_request"),
        "{to}"
    );
    let discovery = app
        .get("/realms/test/.well-known/openid-configuration", None)
        .await;
    assert_eq!(
        discovery.body["response_modes_supported"],
        json!(["query", "fragment", "form_post"])
    );
}

async fn device_codes_and_user_codes_are_rate_limited(app: TestApp) {
    set_client(
        &app,
        "cli",
        json!({"attributes": {"oauth2.device.authorization.grant.enabled": "true"}}),
    )
    .await;
    let device = "/realms/test/protocol/openid-connect/auth/device";
    let mut last = None;
    for _ in 0..3 {
        let r = app.form(device, &[("client_id", "cli")]).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        last = Some(r.str("user_code"));
    }
    let r = app.form(device, &[("client_id", "cli")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert!(r.headers.contains_key("retry-after"));

    // A signed-in browser guessing user codes: three wrong ones, then a
    // readable 429 page, even for a real code.
    let svc = &app.state.services;
    let realm = svc.realms.realm("test").await.expect("realm");
    let alice = app
        .store
        .user_by_username(&realm.id, "alice")
        .await
        .expect("db")
        .expect("alice");
    let (_, sso) = svc
        .browser
        .start_sso_session(&realm, &alice, &Default::default(), None)
        .await
        .expect("sso");
    let guess = |code: String| {
        let req = axum::http::Request::builder()
            .uri(format!("/realms/test/device?user_code={code}"))
            .header("cookie", format!("TESSERA_SSO={sso}"))
            .body(axum::body::Body::empty())
            .expect("request");
        app.send(req)
    };
    let real = last.expect("a user code");
    let r = guess(real.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.as_str().expect("html").contains("device-approve"));
    for wrong in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD"] {
        let r = guess(wrong.into()).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "unknown code: {:?}",
            r.body
        );
    }
    let r = guess(real.clone()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.as_str().expect("html").contains("too many requests"));

    // The realm's own limits hold against many addresses: 5 requests (3 of
    // them above), 6 wrong codes (3 above).
    let from = |n: u8| std::net::SocketAddr::from(([198, 51, 100, n], 40000));
    let device_from = |n: u8| {
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(device)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from("client_id=cli"))
            .expect("request");
        app.send_from(from(n), req)
    };
    // Junk requests (an unknown client) do not use up the realm's allowance.
    for n in 1..=4 {
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(device)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from("client_id=nobody"))
            .expect("request");
        assert_eq!(
            app.send_from(from(n), req).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(device_from(1).await.status, StatusCode::OK);
    assert_eq!(device_from(2).await.status, StatusCode::OK);
    assert_eq!(device_from(3).await.status, StatusCode::TOO_MANY_REQUESTS);
    let guess_from = |n: u8, code: &'static str| {
        let req = axum::http::Request::builder()
            .uri(format!("/realms/test/device?user_code={code}"))
            .header("cookie", format!("TESSERA_SSO={sso}"))
            .body(axum::body::Body::empty())
            .expect("request");
        app.send_from(from(n), req)
    };
    for n in 1..=3 {
        assert_eq!(
            guess_from(n, "FFFF-FFFF").await.status,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        guess_from(9, "GGGG-GGGG").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Behind a trusted load balancer the client's address is the last one it
/// appended; from anyone else `X-Forwarded-For` is ignored.
async fn client_addresses_come_from_trusted_proxies_only(app: TestApp) {
    let mut state = app.state.clone();
    state.settings = std::sync::Arc::new(tessera_http::HttpSettings {
        trusted_proxies: vec!["192.0.2.7".parse().expect("ip")],
        ..(*state.settings).clone()
    });
    let behind = TestApp::with_router(tessera_http::app(state), &app);
    async fn login(node: &TestApp, from: [u8; 4], xff: &str) -> common::Resp {
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(TestApp::token_path("test"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", xff)
            .body(axum::body::Body::from(format!(
                "grant_type=password&client_id=app&client_secret={APP_SECRET}&username=alice&password={}",
                common::ALICE_PASSWORD
            )))
            .expect("request");
        node.send_from(std::net::SocketAddr::from((from, 40000)), req)
            .await
    }
    let ip_of = |r: common::Resp| {
        let sid = common::claims(&r.str("access_token"))["sid"]
            .as_str()
            .expect("sid")
            .to_string();
        let store = app.store.clone();
        async move { store.session(&sid).await.expect("db").expect("session").ip }
    };
    let r = login(&behind, [192, 0, 2, 7], "10.9.9.9, 203.0.113.9").await;
    assert_eq!(ip_of(r).await.as_deref(), Some("203.0.113.9"));
    let r = login(&behind, [198, 51, 100, 4], "203.0.113.9").await;
    assert_eq!(
        ip_of(r).await.as_deref(),
        Some("198.51.100.4"),
        "an untrusted peer"
    );
    let r = login(&app, [192, 0, 2, 7], "203.0.113.9").await;
    assert_eq!(
        ip_of(r).await.as_deref(),
        Some("192.0.2.7"),
        "no proxy configured"
    );
}

async fn password_spraying_is_limited_across_nodes(app: TestApp) {
    let admin = app.admin_token().await;
    for n in 0..5 {
        let r = app
            .json(
                Method::POST,
                "/admin/realms/test/users",
                &admin,
                Some(json!({"username": format!("user{n}"), "enabled": true,
                    "credentials": [{"type": "password", "value": "right-password-0", "temporary": false}]})),
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
    }
    let node_b = app.second_node();
    async fn attempt(node: &TestApp, user: &str, password: &str) -> common::Resp {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "password"),
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("username", user),
                ("password", password),
            ])
            .finish();
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(TestApp::token_path("test"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .expect("request");
        node.send(req).await
    }
    // One password over many usernames, half on each node: the address's
    // failures add up across nodes (each node alone has seen only two).
    for (node, user) in [
        (&app, "user0"),
        (&node_b, "user1"),
        (&app, "user2"),
        (&node_b, "user3"),
    ] {
        let r = attempt(node, user, "Summer2026!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    }
    for node in [&app, &node_b] {
        let r = attempt(node, "user4", "right-password-0").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
        assert!(r.headers.contains_key("retry-after"));
    }
}

/// Realms and clients are cached per node (`catalog.rs`): a change is seen
/// at once on the node that made it, and on another node within the
/// catalog's bound, never later.
async fn a_disabled_client_is_refused_on_every_node_within_the_bound(app: TestApp) {
    async fn grant(node: &TestApp) -> common::Resp {
        node.form_auth(
            "/realms/test/protocol/openid-connect/token",
            &[("grant_type", "client_credentials")],
            Some(&common::basic("app", APP_SECRET)),
        )
        .await
    }
    let node_b = app.second_node();
    // Both nodes have read (and cached) the client.
    for node in [&app, &node_b] {
        let r = grant(node).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    set_client(&app, "app", json!({"enabled": false})).await;
    // The node that disabled it refuses at once ...
    let r = grant(&app).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    // ... the other once its copy is older than the bound.
    tokio::time::sleep(std::time::Duration::from_millis(CATALOG_TTL_MS + 100)).await;
    let r = grant(&node_b).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    // Enabled again (on node B this time): B at once, A within the bound.
    set_client(&node_b, "app", json!({"enabled": true})).await;
    assert_eq!(grant(&node_b).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(CATALOG_TTL_MS + 100)).await;
    assert_eq!(grant(&app).await.status, StatusCode::OK);
}

async fn a_revoked_session_is_refused_on_every_node_within_the_bound(app: TestApp) {
    async fn active(node: &TestApp, token: &str) -> bool {
        let r = node
            .form_auth(
                "/realms/test/protocol/openid-connect/token/introspect",
                &[("token", token)],
                Some(&common::basic("app", APP_SECRET)),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["active"] == true
    }
    let node_b = app.second_node();
    let login = app.alice(None).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let (access, refresh) = (login.str("access_token"), login.str("refresh_token"));
    // Both nodes have checked (and cached) the live session.
    for node in [&app, &node_b] {
        assert!(active(node, &access).await);
        assert!(active(node, &access).await);
    }
    // Revoked on node A (RFC 7009): A refuses it at once ...
    let r = app
        .form_auth(
            "/realms/test/protocol/openid-connect/revoke",
            &[("token", &refresh)],
            Some(&common::basic("app", APP_SECRET)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(!active(&app, &access).await);
    // ... and B, which hears nothing here (no relay between these two),
    // once its copy is older than the bound.
    tokio::time::sleep(std::time::Duration::from_millis(SESSION_CACHE_MS + 100)).await;
    assert!(!active(&node_b, &access).await);

    // The other way round, ended by an administrator on B.
    let login = app.alice(None).await;
    let access = login.str("access_token");
    for node in [&app, &node_b] {
        assert!(active(node, &access).await);
    }
    let admin = node_b.admin_token().await;
    let user = node_b.user_id("test", "alice").await;
    let r = node_b
        .json(
            Method::POST,
            &format!("/admin/realms/test/users/{user}/logout"),
            &admin,
            None,
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    assert!(!active(&node_b, &access).await);
    tokio::time::sleep(std::time::Duration::from_millis(SESSION_CACHE_MS + 100)).await;
    assert!(!active(&app, &access).await);
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = super::app(super::Backend::Sqlite).await.expect("sqlite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = super::app(super::Backend::Postgres).await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
}

both!(
    disabling_a_client_ends_its_tokens_everywhere,
    a_disabled_client_is_refused_on_every_node_within_the_bound,
    a_revoked_session_is_refused_on_every_node_within_the_bound,
    pkce_client_attribute_is_enforced,
    device_codes_and_user_codes_are_rate_limited,
    password_spraying_is_limited_across_nodes,
    client_addresses_come_from_trusted_proxies_only,
);
