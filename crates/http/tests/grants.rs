//! Token endpoint grants through the router: response shape, claims, client
//! authentication, refresh rotation, reuse detection and the concurrent
//! refresh race — on SQLite and PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::{basic, claims, header, Backend, TestApp, APP_SECRET};

async fn password_grant_returns_keycloak_shaped_tokens(app: TestApp) {
    let r = app.alice(Some("openid")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    for field in [
        "access_token",
        "refresh_token",
        "id_token",
        "session_state",
        "scope",
    ] {
        assert!(r.body[field].is_string(), "missing {field}: {}", r.body);
    }
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 300);
    assert_eq!(r.body["not-before-policy"], 0);
    let refresh_in = r.body["refresh_expires_in"]
        .as_i64()
        .expect("refresh_expires_in");
    assert!(
        (30 * 86400 - 5..=30 * 86400).contains(&refresh_in),
        "{refresh_in}"
    );
    assert_eq!(r.body["scope"], "email openid profile");

    let at = claims(&r.str("access_token"));
    let alice = app.user_id("test", "alice").await;
    assert_eq!(at["iss"], "http://tessera.test/realms/test");
    assert_eq!(at["sub"], alice.as_str());
    assert_eq!(at["typ"], "Bearer");
    assert_eq!(at["azp"], "app");
    assert_eq!(at["aud"], "app");
    assert_eq!(at["preferred_username"], "alice");
    assert_eq!(at["email"], "alice@example.test");
    assert_eq!(at["sid"], r.body["session_state"]);
    assert_eq!(
        at["exp"].as_i64().expect("exp") - at["iat"].as_i64().expect("iat"),
        300
    );
    assert!(at["jti"].as_str().is_some_and(|j| j.len() >= 32));
    assert_eq!(header(&r.str("access_token"))["alg"], "RS256");

    let id = claims(&r.str("id_token"));
    assert_eq!(id["typ"], "ID");
    assert_eq!(id["aud"], "app");
    assert_eq!(id["sid"], at["sid"]);
    assert!(id["at_hash"].is_string() && id["auth_time"].is_i64());

    // Without `openid` there is no ID token.
    let r = app.alice(None).await;
    assert!(r.body.get("id_token").is_none());
    assert_eq!(r.body["scope"], "email profile");
}

async fn session_records_client_device_ip_and_agent(app: TestApp) {
    let r = app.alice(None).await;
    let sid = r.str("session_state");
    let s = app.store.session(&sid).await.expect("db").expect("session");
    assert_eq!(s.device_id.as_deref(), Some("laptop-1"));
    assert_eq!(s.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(s.user_agent.as_deref(), Some("tessera-tests/1.0"));
    let client = app
        .store
        .client(&s.realm_id, &s.client_id)
        .await
        .expect("db")
        .expect("client");
    assert_eq!(client.client_id, "app");
}

async fn client_authentication_methods(app: TestApp) {
    let path = TestApp::token_path("test");
    // client_secret_basic
    let r = app
        .form_auth(
            &path,
            &[("grant_type", "client_credentials")],
            Some(&basic("app", APP_SECRET)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(
        r.body.get("refresh_token").is_none(),
        "client_credentials issues no refresh token"
    );
    let at = claims(&r.str("access_token"));
    assert_eq!(at["preferred_username"], "service-account-app");
    assert!(at.get("sid").is_none());
    // client_secret_post
    let r = app
        .form(
            &path,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // wrong secret, either way
    let r = app
        .form_auth(
            &path,
            &[("grant_type", "client_credentials")],
            Some(&basic("app", "nope")),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    assert!(r.headers.contains_key("www-authenticate"));
    let r = app
        .form(
            &path,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "nope"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    // confidential client without a secret
    let r = app
        .form(
            &path,
            &[("grant_type", "client_credentials"), ("client_id", "app")],
        )
        .await;
    assert_eq!(r.error(), "invalid_client");
    // public clients may not use client_credentials, but may use password
    let r = app
        .form(
            &path,
            &[("grant_type", "client_credentials"), ("client_id", "cli")],
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
    let r = app.login_at(&path, "cli", "bob", "bob-password").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn bad_user_credentials_look_the_same_for_unknown_users(app: TestApp) {
    let path = TestApp::token_path("test");
    let wrong = app.login_at(&path, "cli", "alice", "wrong").await;
    let unknown = app.login_at(&path, "cli", "nobody", "wrong").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error(), "invalid_grant");
    assert_eq!((wrong.status, &wrong.body), (unknown.status, &unknown.body));
    assert_eq!(app.active_sessions("alice").await, 0);
}

async fn refresh_rotates_and_old_token_is_spent(app: TestApp) {
    let first = app.alice(None).await;
    let r1 = first.str("refresh_token");
    let second = app.refresh(&r1).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let r2 = second.str("refresh_token");
    assert_ne!(r1, r2, "rotated on every use");
    assert_eq!(second.body["session_state"], first.body["session_state"]);
    // The answer that carried r2 may never have reached the client: within
    // the grace window r1 again gets the same successor, and new access
    // tokens with it.
    let again = app.refresh(&r1).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.str("refresh_token"), r2, "the one successor, again");
    assert_ne!(again.str("access_token"), second.str("access_token"));
    let third = app.refresh(&r2).await;
    assert_eq!(
        third.status,
        StatusCode::OK,
        "successor still valid: {:?}",
        third.body
    );
    let r3 = third.str("refresh_token");
    // Once r2 is used, r1 is refused, yet within the window the session lives.
    let late = app.refresh(&r1).await;
    assert_eq!(
        (late.status, late.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert_eq!(app.active_sessions("alice").await, 1);
    // r2 has one successor too: r3, never a second.
    let twice = app.refresh(&r2).await;
    assert_eq!(twice.str("refresh_token"), r3);
    assert_eq!(app.refresh(&r3).await.status, StatusCode::OK);
}

async fn refresh_requires_the_issuing_client_and_a_subset_scope(app: TestApp) {
    let r = app.alice(None).await;
    let rt = r.str("refresh_token");
    let path = TestApp::token_path("test");
    let other = app
        .form(
            &path,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "cli"),
                ("refresh_token", &rt),
            ],
        )
        .await;
    assert_eq!(other.error(), "invalid_grant");
    let wider = app
        .form(
            &path,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("refresh_token", &rt),
                ("scope", "phone"),
            ],
        )
        .await;
    assert_eq!(wider.error(), "invalid_scope");
    // Neither attempt spent the token.
    let ok = app.refresh(&rt).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let narrowed = app
        .form(
            &path,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("refresh_token", &ok.str("refresh_token")),
                ("scope", "email"),
            ],
        )
        .await;
    assert_eq!(narrowed.body["scope"], "email");
}

async fn concurrent_refresh_yields_exactly_one_pair(app: TestApp) {
    let rt = app.alice(None).await.str("refresh_token");
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let app = app.clone();
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move { app.refresh(&rt).await }));
    }
    let mut winners = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.expect("join");
        assert_eq!(
            r.status,
            StatusCode::OK,
            "every racer is answered: {:?}",
            r.body
        );
        winners.insert(r.str("refresh_token"));
    }
    let winners: Vec<String> = winners.into_iter().collect();
    assert_eq!(winners.len(), 1, "exactly one successor, whoever won");
    assert_eq!(
        app.active_sessions("alice").await,
        1,
        "the race does not revoke the session"
    );
    assert_eq!(app.refresh(&winners[0]).await.status, StatusCode::OK);
}

async fn temporary_password_and_disabled_user_cannot_sign_in(app: TestApp) {
    let admin = app.admin_token().await;
    let alice = app.user_id("test", "alice").await;
    let r = app
        .json(
            axum::http::Method::PUT,
            &format!("/admin/realms/test/users/{alice}/reset-password"),
            &admin,
            Some(serde_json::json!({"type": "password", "value": "temp-pass", "temporary": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let path = TestApp::token_path("test");
    let r = app.login_at(&path, "cli", "alice", "temp-pass").await;
    assert_eq!(r.error(), "invalid_grant");
    assert_eq!(r.body["error_description"], "Account is not fully set up");

    let bob = app.login_at(&path, "cli", "bob", "bob-password").await;
    let bob_refresh = bob.str("refresh_token");
    let bob_id = app.user_id("test", "bob").await;
    let r = app
        .json(
            axum::http::Method::PUT,
            &format!("/admin/realms/test/users/{bob_id}"),
            &admin,
            Some(serde_json::json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.login_at(&path, "cli", "bob", "bob-password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .form(
            &path,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "cli"),
                ("refresh_token", &bob_refresh),
            ],
        )
        .await;
    assert_eq!(r.error(), "invalid_grant", "disabling ends sessions");
}

on_both_backends!(
    password_grant_returns_keycloak_shaped_tokens,
    session_records_client_device_ip_and_agent,
    client_authentication_methods,
    bad_user_credentials_look_the_same_for_unknown_users,
    refresh_rotates_and_old_token_is_spent,
    refresh_requires_the_issuing_client_and_a_subset_scope,
    concurrent_refresh_yields_exactly_one_pair,
    temporary_password_and_disabled_user_cannot_sign_in,
);

/// After the grace window, presenting a spent token revokes the whole family.
async fn reuse_after_grace_revokes_the_session(backend: Backend) {
    let Some(app) = common::app_with(backend, |c| c.refresh_reuse_grace_ms = 0).await else {
        return;
    };
    let first = app.alice(None).await;
    let r1 = first.str("refresh_token");
    let second = app.refresh(&r1).await;
    let r2 = second.str("refresh_token");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let reuse = app.refresh(&r1).await;
    assert_eq!(reuse.error(), "invalid_grant");
    assert_eq!(app.active_sessions("alice").await, 0, "session revoked");
    let r = app.refresh(&r2).await;
    assert_eq!(
        r.error(),
        "invalid_grant",
        "the legitimate successor dies too"
    );
    let r = app
        .get(
            "/realms/test/protocol/openid-connect/userinfo",
            Some(&second.str("access_token")),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "access tokens of the session stop working"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_after_grace_revokes_the_session_sqlite() {
    reuse_after_grace_revokes_the_session(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_after_grace_revokes_the_session_postgres() {
    reuse_after_grace_revokes_the_session(Backend::Postgres).await;
}
