//! Operations and compatibility surfaces: Che settings, discovery, the legacy
//! `/auth` prefix, health, metrics and failed-login throttling.

mod common;

use axum::http::StatusCode;
use common::TestApp;

async fn che_settings_have_exactly_the_seed_keys(app: TestApp) {
    let r = app.get("/api/keycloak/settings", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let obj = r.body.as_object().expect("object");
    let mut keys: Vec<_> = obj.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "che.keycloak.auth_server_url",
            "che.keycloak.client_id",
            "che.keycloak.logout.endpoint",
            "che.keycloak.password.endpoint",
            "che.keycloak.profile.endpoint",
            "che.keycloak.realm",
            "che.keycloak.token.endpoint",
        ]
    );
    assert_eq!(r.body["che.keycloak.realm"], "master");
    assert_eq!(
        r.body["che.keycloak.auth_server_url"],
        "http://tessera.test/auth"
    );
    assert_eq!(
        r.body["che.keycloak.token.endpoint"],
        "http://tessera.test/auth/realms/master/protocol/openid-connect/token"
    );
    // The advertised token endpoint really serves tokens (legacy prefix).
    let t = app
        .login_at(
            "/auth/realms/master/protocol/openid-connect/token",
            "admin-cli",
            "admin",
            common::ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(t.status, StatusCode::OK);
    assert_eq!(
        common::claims(&t.str("access_token"))["iss"],
        "http://tessera.test/realms/master"
    );
}

async fn discovery_matches_the_served_endpoints(app: TestApp) {
    let d = app
        .get("/auth/realms/test/.well-known/openid-configuration", None)
        .await;
    assert_eq!(d.body["issuer"], "http://tessera.test/realms/test");
    // RFC 8414 §3.1 path insertion, and OpenID discovery at the same place:
    // one document, issuer unchanged.
    for path in [
        "/.well-known/oauth-authorization-server/realms/test",
        "/.well-known/openid-configuration/realms/test",
        "/realms/test/.well-known/openid-configuration",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body, d.body, "{path}");
    }
    for path in [
        "/.well-known/oauth-authorization-server/realms/ghost",
        "/.well-known/oauth-authorization-server",
    ] {
        assert_eq!(app.get(path, None).await.status, StatusCode::NOT_FOUND);
    }
    // Every advertised endpoint answers its own protocol's error to an empty
    // request with the method it is used with: it is really served there.
    let path_of = |field: &str| {
        d.str(field)
            .strip_prefix("http://tessera.test")
            .expect("public URL")
            .to_string()
    };
    for field in [
        "token_endpoint",
        "device_authorization_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        let path = path_of(field);
        let r = app.form(&path, &[]).await;
        assert!(
            matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED)
                && r.body["error"].is_string(),
            "{field} {path}: {} {:?}",
            r.status,
            r.body
        );
    }
    for (field, expected) in [
        ("userinfo_endpoint", StatusCode::UNAUTHORIZED),
        ("jwks_uri", StatusCode::OK),
        ("authorization_endpoint", StatusCode::BAD_REQUEST),
        ("end_session_endpoint", StatusCode::OK),
    ] {
        let path = path_of(field);
        let r = app.get(&path, None).await;
        assert_eq!(r.status, expected, "{field} {path}: {:?}", r.body);
    }
    // Each advertised grant type is one the token endpoint knows (its error
    // is about the request, never `unsupported_grant_type`), and each
    // advertised client authentication method is accepted: `none` by a
    // public client's password grant.
    let token = path_of("token_endpoint");
    let grants = d.body["grant_types_supported"].as_array().expect("grants");
    assert!(grants.len() >= 5, "{grants:?}");
    for grant in grants {
        let grant = grant.as_str().expect("string");
        let r = app
            .form(&token, &[("grant_type", grant), ("client_id", "app")])
            .await;
        assert!(
            matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED)
                && !r.error().is_empty()
                && r.error() != "unsupported_grant_type",
            "{grant}: {} {:?}",
            r.status,
            r.body
        );
    }
    let r = app
        .form(
            &token,
            &[("grant_type", "urn:example:nope"), ("client_id", "app")],
        )
        .await;
    assert_eq!(r.error(), "unsupported_grant_type");
    assert_eq!(
        d.body["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    let public = app
        .login_at(&token, "cli", "alice", common::ALICE_PASSWORD)
        .await;
    assert_eq!(
        public.status,
        StatusCode::OK,
        "method none: {:?}",
        public.body
    );
    assert_eq!(
        d.body["revocation_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    let refresh_token = public.str("refresh_token");
    let revoked = app
        .form(
            &path_of("revocation_endpoint"),
            &[("client_id", "cli"), ("token", &refresh_token)],
        )
        .await;
    assert_eq!(
        revoked.status,
        StatusCode::OK,
        "method none: {:?}",
        revoked.body
    );
    let again = app
        .form(
            &token,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "cli"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(again.error(), "invalid_grant", "revoked: {:?}", again.body);
    assert_eq!(
        d.body["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        d.body["authorization_response_iss_parameter_supported"],
        true
    );
    let info = app.get("/realms/test", None).await;
    assert_eq!(
        info.body["token-service"],
        "http://tessera.test/realms/test/protocol/openid-connect"
    );
}

/// Behind a proxy that serves Tessera under a path, the issuer has that
/// path and RFC 8414's metadata URL inserts the well-known before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_inserted_metadata_follows_a_public_url_with_a_path() {
    let app = common::app_with(common::Backend::Sqlite, |c| {
        c.public_url = "http://tessera.test/id".into();
    })
    .await
    .expect("sqlite app");
    for path in [
        "/.well-known/oauth-authorization-server/id/realms/test",
        "/.well-known/openid-configuration/id/realms/test",
        "/.well-known/oauth-authorization-server/realms/test",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(
            r.body["issuer"], "http://tessera.test/id/realms/test",
            "{path}"
        );
    }
}

/// The value of one sample line of the Prometheus text, 0 when absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn health_and_metrics(app: TestApp) {
    assert_eq!(app.get("/health/live", None).await.body["status"], "UP");
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "UP");
    let issued = "tessera_tokens_issued_total{grant=\"password\"}";
    let requests = "http_requests_total{route=\"/realms/{realm}/protocol/openid-connect/token\",method=\"POST\",status=\"200\"}";
    let before = app
        .get("/metrics", None)
        .await
        .body
        .as_str()
        .expect("text")
        .to_string();
    app.alice(None).await;
    app.alice(None).await;
    app.login_at(&TestApp::token_path("test"), "cli", "alice", "wrong")
        .await;
    let after = app
        .get("/metrics", None)
        .await
        .body
        .as_str()
        .expect("text")
        .to_string();
    assert_eq!(
        sample(&after, issued) - sample(&before, issued),
        2,
        "{after}"
    );
    assert_eq!(
        sample(&after, requests) - sample(&before, requests),
        2,
        "{after}"
    );
    assert!(sample(&after, "http_requests_total{route=\"/realms/{realm}/protocol/openid-connect/token\",method=\"POST\",status=\"401\"}") >= 1);
    assert!(
        after.contains("http_request_duration_seconds_bucket{le="),
        "{after}"
    );
}

async fn failed_logins_are_throttled_per_username(app: TestApp) {
    let path = TestApp::token_path("test");
    let attempt = |user: &'static str, pw: &'static str| {
        let (app, path) = (&app, path.clone());
        async move { app.login_at(&path, "cli", user, pw).await }
    };
    for _ in 0..5 {
        assert_eq!(
            attempt("alice", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = attempt("alice", "wrong").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.error(), "invalid_grant");
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    // Even the right password waits out the lock; other users are unaffected.
    assert_eq!(
        attempt("alice", common::ALICE_PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(attempt("bob", "bob-password").await.status, StatusCode::OK);
    // Unknown usernames are throttled the same way, revealing nothing.
    for _ in 0..5 {
        attempt("nobody", "x").await;
    }
    assert_eq!(
        attempt("nobody", "x").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn parallel_guesses_are_throttled_too(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let guess = format!("guess-{i}");
            app.login_at(&TestApp::token_path("test"), "cli", "alice", &guess)
                .await
                .status
        }));
    }
    let mut checked = 0;
    for t in tasks {
        match t.await.expect("join") {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        checked <= 5,
        "only 5 guesses may be checked, {checked} were"
    );
    assert_eq!(app.alice(None).await.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Shutdown: from the first signal the node says "not ready" (so load
/// balancers stop sending), yet still answers what reaches it.
async fn readiness_is_503_while_draining(app: TestApp) {
    assert_eq!(app.get("/health/ready", None).await.status, StatusCode::OK);
    app.state.services.health.begin_drain();
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "DOWN");
    assert!(
        ready.headers.contains_key("retry-after"),
        "{:?}",
        ready.headers
    );
    assert_eq!(app.get("/health/live", None).await.status, StatusCode::OK);
    assert_eq!(app.alice(None).await.status, StatusCode::OK);
}

on_both_backends!(
    readiness_is_503_while_draining,
    parallel_guesses_are_throttled_too,
    che_settings_have_exactly_the_seed_keys,
    discovery_matches_the_served_endpoints,
    health_and_metrics,
    failed_logins_are_throttled_per_username,
);
