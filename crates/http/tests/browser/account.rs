//! The account page and its JSON API.

use super::*;

pub(super) async fn account_page_lists_and_signs_out_sessions(app: TestApp) {
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

pub(super) async fn account_password_change(app: TestApp) {
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

pub(super) async fn account_api_with_a_bearer_token(app: TestApp) {
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

pub(super) async fn account_forms_need_csrf(app: TestApp) {
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
