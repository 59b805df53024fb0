//! RP-initiated logout.

use super::*;

pub(super) async fn rp_logout_ends_the_sso_session_and_its_tokens(app: TestApp) {
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

pub(super) async fn logout_without_hint_asks_first(app: TestApp) {
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
