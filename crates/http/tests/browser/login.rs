//! The authorization endpoint and its login page: codes, PKCE, redirect URIs, SSO, security headers.

use super::*;

pub(super) async fn code_login_with_pkce_issues_tokens_with_id_token(app: TestApp) {
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

pub(super) async fn code_replay_revokes_what_it_issued(app: TestApp) {
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

pub(super) async fn pkce_is_enforced(app: TestApp) {
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

pub(super) async fn redirect_uri_must_match_exactly(app: TestApp) {
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

pub(super) async fn bad_requests_go_back_to_the_client(app: TestApp) {
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

pub(super) async fn sso_cookie_signs_a_second_client_in(app: TestApp) {
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

pub(super) async fn login_failures_are_generic_and_forms_need_csrf(app: TestApp) {
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

pub(super) async fn pages_send_security_headers(app: TestApp) {
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

pub(super) async fn discovery_advertises_browser_endpoints(app: TestApp) {
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

pub(super) async fn confidential_clients_and_foreign_redemptions(app: TestApp) {
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

pub(super) async fn loopback_redirects_take_any_port_and_fragments_work(app: TestApp) {
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

pub(super) async fn signing_in_again_renews_or_replaces_the_browser_session(app: TestApp) {
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
    let realm = app
        .state
        .services
        .realms
        .realm("test")
        .await
        .expect("realm");
    let browsers = app
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
