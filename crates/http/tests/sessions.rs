//! userinfo, introspection, revocation and logout, and their effect on the
//! session family — on both backends.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, APP_SECRET};

const OIDC: &str = "/realms/test/protocol/openid-connect";

async fn introspect(app: &TestApp, token: &str) -> serde_json::Value {
    let r = app
        .form(
            &format!("{OIDC}/token/introspect"),
            &[
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("token", token),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn userinfo_returns_the_subjects_claims(app: TestApp) {
    let t = app.alice(None).await;
    let at = t.str("access_token");
    let r = app.get(&format!("{OIDC}/userinfo"), Some(&at)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["sub"], app.user_id("test", "alice").await.as_str());
    assert_eq!(r.body["preferred_username"], "alice");
    assert_eq!(r.body["email"], "alice@example.test");
    assert_eq!(r.body["name"], "First alice");
    // Auth schemes are case-insensitive (RFC 7235).
    let r = app
        .raw(
            Method::GET,
            &format!("{OIDC}/userinfo"),
            None,
            Some(&format!("BEARER {at}")),
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // POST with the token in the form body (RFC 6750 §2.2) works too.
    let r = app
        .form(&format!("{OIDC}/userinfo"), &[("access_token", &at)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Missing, malformed, tampered and cross-realm tokens are 401 with WWW-Authenticate.
    let mut tampered = at.clone();
    tampered.insert(at.len() - 3, 'A');
    let admin = app.admin_token().await;
    for (name, token) in [
        ("none", None),
        ("junk", Some("abc.def.ghi")),
        ("tampered", Some(tampered.as_str())),
        ("other realm", Some(admin.as_str())),
    ] {
        let r = app.get(&format!("{OIDC}/userinfo"), token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
        let www = r.headers["www-authenticate"].to_str().expect("ascii");
        assert!(
            www.starts_with("Bearer error=\"invalid_token\""),
            "{name}: {www}"
        );
    }
    // A refresh token is not an access token.
    let r = app
        .get(&format!("{OIDC}/userinfo"), Some(&t.str("refresh_token")))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Nor is an ID token, though it is signed by the same key.
    let id = app.alice(Some("openid")).await.str("id_token");
    assert_eq!(
        app.get(&format!("{OIDC}/userinfo"), Some(&id)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn introspection_tracks_session_state(app: TestApp) {
    let t = app.alice(None).await;
    let (at, rt) = (t.str("access_token"), t.str("refresh_token"));
    let a = introspect(&app, &at).await;
    assert_eq!(a["active"], true);
    assert_eq!(a["client_id"], "app");
    assert_eq!(a["username"], "alice");
    assert_eq!(a["token_type"], "Bearer");
    let r = introspect(&app, &rt).await;
    assert_eq!(r["active"], true);
    assert_eq!(r["token_type"], "Refresh");
    assert_eq!(
        introspect(&app, "garbage").await,
        serde_json::json!({"active": false})
    );

    let out = app
        .form(
            &format!("{OIDC}/logout"),
            &[
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("refresh_token", &rt),
            ],
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        introspect(&app, &at).await["active"],
        false,
        "logout ends the session's access tokens"
    );
    assert_eq!(introspect(&app, &rt).await["active"], false);
    assert_eq!(app.refresh(&rt).await.error(), "invalid_grant");
    assert_eq!(app.active_sessions("alice").await, 0);
}

async fn revocation_ends_the_session_only_for_the_owning_client(app: TestApp) {
    let t = app.alice(None).await;
    let rt = t.str("refresh_token");
    // Another client may not revoke alice's token at `app`.
    let r = app
        .form(
            &format!("{OIDC}/revoke"),
            &[("client_id", "cli"), ("token", &rt)],
        )
        .await;
    assert_eq!(r.error(), "unauthorized_client");
    assert_eq!(app.active_sessions("alice").await, 1);
    // Unknown tokens are not an error (RFC 7009 §2.2).
    let r = app
        .form(
            &format!("{OIDC}/revoke"),
            &[
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("token", "unknown"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .form(
            &format!("{OIDC}/revoke"),
            &[
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("token", &rt),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.active_sessions("alice").await, 0);
    assert_eq!(app.refresh(&rt).await.error(), "invalid_grant");

    // Revoking an access token ends the session it belongs to.
    let t = app.alice(None).await;
    let r = app
        .form(
            &format!("{OIDC}/revoke"),
            &[
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("token", &t.str("access_token")),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.get(&format!("{OIDC}/userinfo"), Some(&t.str("access_token")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&t.str("refresh_token")).await.error(),
        "invalid_grant"
    );
}

async fn logout_requires_the_owning_client(app: TestApp) {
    let t = app.alice(None).await;
    let r = app
        .form(
            &format!("{OIDC}/logout"),
            &[
                ("client_id", "cli"),
                ("refresh_token", &t.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(r.error(), "invalid_grant");
    assert_eq!(app.active_sessions("alice").await, 1);
}

async fn admin_lists_and_revokes_sessions(app: TestApp) {
    let admin = app.admin_token().await;
    let first = app.alice(None).await;
    let second = app.alice(None).await;
    let alice = app.user_id("test", "alice").await;
    let r = app
        .json(
            Method::GET,
            &format!("/admin/realms/test/users/{alice}/sessions"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let sessions = r.body.as_array().expect("list");
    assert_eq!(sessions.len(), 2);
    let s = &sessions[0];
    assert_eq!(s["username"], "alice");
    assert_eq!(s["ipAddress"], "192.0.2.7");
    assert_eq!(s["deviceId"], "laptop-1");
    assert_eq!(s["userAgent"], "tessera-tests/1.0");
    assert!(s["clients"]
        .as_object()
        .expect("clients")
        .values()
        .any(|v| v == "app"));
    assert!(s["start"].as_i64().is_some() && s["lastAccess"].as_i64().is_some());

    let sid = first.str("session_state");
    let r = app
        .json(
            Method::DELETE,
            &format!("/admin/realms/test/sessions/{sid}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh(&first.str("refresh_token")).await.error(),
        "invalid_grant"
    );
    assert_eq!(app.active_sessions("alice").await, 1);
    // Sessions of another realm cannot be deleted through this realm.
    let r = app
        .json(
            Method::DELETE,
            &format!(
                "/admin/realms/master/sessions/{}",
                second.str("session_state")
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .json(
            Method::POST,
            &format!("/admin/realms/test/users/{alice}/logout"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.active_sessions("alice").await, 0);
    assert_eq!(
        app.refresh(&second.str("refresh_token")).await.error(),
        "invalid_grant"
    );
}

on_both_backends!(
    userinfo_returns_the_subjects_claims,
    introspection_tracks_session_state,
    revocation_ends_the_session_only_for_the_owning_client,
    logout_requires_the_owning_client,
    admin_lists_and_revokes_sessions,
);
