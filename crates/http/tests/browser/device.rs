//! Device authorization (RFC 8628): the verification page, polling, approval and denial.

use super::*;

pub(super) async fn device_flow_end_to_end(app: TestApp) {
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
        app.store
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

pub(super) async fn poll_device(app: &TestApp, client: &str, device_code: &str) -> Resp {
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
pub(super) async fn force_poll_window(app: &TestApp, device_code: &str) {
    let hash = tessera_core::TokenHash::of(device_code);
    // A poll at time 0 resets `last_polled_at` (or raises the interval,
    // then it is at 0 anyway); either way the next real poll is on time.
    app.store.record_device_poll(&hash, 0).await.expect("db");
    app.store.record_device_poll(&hash, 1).await.expect("db");
}

pub(super) async fn device_denied_expired_and_refused(app: TestApp) {
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

pub(super) async fn device_codes_expire(app: TestApp) {
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

pub(super) async fn device_approval_needs_this_browser_and_dies_with_sign_out(app: TestApp) {
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
