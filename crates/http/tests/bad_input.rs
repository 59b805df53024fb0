//! Every kind of bad input gets a clear RFC 6749 error (or 404/413/415) and
//! changes nothing in the database. Table-driven, on both backends.

mod common;

use axum::http::{Method, StatusCode};
use common::{basic, TestApp, APP_SECRET};

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    auth: Option<String>,
    body: Vec<u8>,
    status: StatusCode,
    error: &'static str,
}

fn case(name: &'static str, body: &str, status: StatusCode, error: &'static str) -> Case {
    Case {
        name,
        path: "/realms/test/protocol/openid-connect/token",
        content_type: Some("application/x-www-form-urlencoded"),
        auth: None,
        body: body.as_bytes().to_vec(),
        status,
        error,
    }
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let good = "grant_type=password&client_id=app&client_secret=app-secret-0123456789abcdef&username=alice&password=alice-password";
    vec![
        Case { content_type: None, ..case("no content type", good, S::BAD_REQUEST, "invalid_request") },
        Case { content_type: Some("application/json"), ..case("JSON body", r#"{"grant_type":"password"}"#, S::BAD_REQUEST, "invalid_request") },
        Case { body: b"grant_type=password&\xff\xfe=1".to_vec(), ..case("not UTF-8", "", S::BAD_REQUEST, "invalid_request") },
        case("duplicate grant_type", &format!("{good}&grant_type=password"), S::BAD_REQUEST, "invalid_request"),
        case("duplicate password", &format!("{good}&password=x"), S::BAD_REQUEST, "invalid_request"),
        case("missing grant_type", "client_id=app", S::BAD_REQUEST, "invalid_request"),
        case("unknown grant_type", "grant_type=magic&client_id=app", S::BAD_REQUEST, "unsupported_grant_type"),
        case("implicit is not a token grant", "grant_type=implicit&client_id=cli", S::BAD_REQUEST, "unsupported_grant_type"),
        case("missing username", "grant_type=password&client_id=cli&password=x", S::BAD_REQUEST, "invalid_request"),
        case("missing password", "grant_type=password&client_id=cli&username=alice", S::BAD_REQUEST, "invalid_request"),
        case("missing refresh_token", "grant_type=refresh_token&client_id=cli", S::BAD_REQUEST, "invalid_request"),
        case("unknown client", "grant_type=password&client_id=ghost&username=alice&password=alice-password", S::UNAUTHORIZED, "invalid_client"),
        case("missing client", "grant_type=password&username=alice&password=alice-password", S::UNAUTHORIZED, "invalid_client"),
        case("wrong client secret", "grant_type=password&client_id=app&client_secret=nope&username=alice&password=alice-password", S::UNAUTHORIZED, "invalid_client"),
        case("unknown scope", &format!("{good}&scope=openid%20root"), S::BAD_REQUEST, "invalid_scope"),
        case("garbage refresh token", "grant_type=refresh_token&client_id=cli&refresh_token=abc", S::BAD_REQUEST, "invalid_grant"),
        Case { auth: Some(basic("app", APP_SECRET)), ..case("two client auth methods", good, S::BAD_REQUEST, "invalid_request") },
        Case { auth: Some("Basic %%%".into()), ..case("malformed basic header", "grant_type=client_credentials", S::UNAUTHORIZED, "invalid_client") },
        Case { path: "/realms/nope/protocol/openid-connect/token", ..case("unknown realm", good, S::NOT_FOUND, "not_found") },
        Case { body: format!("{good}&pad={}", "x".repeat(10_000)).into_bytes(), ..case("oversized body", "", S::PAYLOAD_TOO_LARGE, "invalid_request") },
        Case { path: "/realms/test/protocol/openid-connect/revoke", ..case("revoke without token", "client_id=cli", S::BAD_REQUEST, "invalid_request") },
        Case { path: "/realms/test/protocol/openid-connect/revoke", ..case("revoke with bad hint", "client_id=cli&token=x&token_type_hint=id_token", S::BAD_REQUEST, "unsupported_token_type") },
        Case { path: "/realms/test/protocol/openid-connect/token/introspect", ..case("introspect by public client", "client_id=cli&token=x", S::BAD_REQUEST, "unauthorized_client") },
        Case { path: "/realms/test/protocol/openid-connect/token/introspect", ..case("introspect without token", "client_id=app&client_secret=app-secret-0123456789abcdef", S::BAD_REQUEST, "invalid_request") },
        Case { path: "/realms/test/protocol/openid-connect/logout", ..case("logout with bad refresh token", "client_id=cli&refresh_token=zzz", S::BAD_REQUEST, "invalid_grant") },
        Case { path: "/realms/test/protocol/openid-connect/logout", ..case("logout by refresh token without a client", "refresh_token=zzz", S::UNAUTHORIZED, "invalid_client") },
    ]
}

/// Everything a bad request could have written: sessions (with last-used
/// time), a live refresh token's record, clients, users, realms and keys.
async fn fingerprint(app: &TestApp, refresh_token: &str) -> String {
    let store = &app.store;
    let realm = store
        .realm_by_name("test")
        .await
        .expect("db")
        .expect("realm");
    let mut out = String::new();
    for name in ["alice", "bob"] {
        let id = app.user_id("test", name).await;
        out += &format!(
            "{:?}",
            store.user_sessions(&realm.id, &id, 0).await.expect("db")
        );
        out += &format!(
            "{:?}",
            store
                .user(&realm.id, &id)
                .await
                .expect("db")
                .map(|u| (u.password_hash, u.enabled))
        );
    }
    let token = tessera_core::TokenHash::of(refresh_token);
    out += &format!("{:?}", store.refresh_token(&token).await.expect("db"));
    out += &format!("{:?}", store.list_clients(&realm.id).await.expect("db"));
    out += &format!("{:?}", store.list_realms().await.expect("db"));
    out += &format!("{:?}", store.keys(&realm.id, "realm").await.expect("db"));
    out
}

async fn protocol_endpoints_reject_bad_input_without_side_effects(app: TestApp) {
    let live = app.alice(None).await;
    let rt = live.str("refresh_token");
    let before = fingerprint(&app, &rt).await;
    let mut all = cases();
    // Misuses of a live refresh token must not spend or touch it.
    let path = "/realms/test/protocol/openid-connect/token";
    all.push(Case {
        path,
        ..case(
            "refresh at another client",
            &format!("grant_type=refresh_token&client_id=cli&refresh_token={rt}"),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
    });
    all.push(Case { path, ..case("refresh with wider scope", &format!("grant_type=refresh_token&client_id=app&client_secret={APP_SECRET}&refresh_token={rt}&scope=phone"), StatusCode::BAD_REQUEST, "invalid_scope") });
    all.push(Case {
        path,
        ..case(
            "refresh with wrong secret",
            &format!(
                "grant_type=refresh_token&client_id=app&client_secret=nope&refresh_token={rt}"
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
    });
    all.push(Case {
        path: "/realms/test/protocol/openid-connect/logout",
        ..case(
            "logout at another client",
            &format!("client_id=cli&refresh_token={rt}"),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
    });
    all.push(Case {
        path: "/realms/test/protocol/openid-connect/revoke",
        ..case(
            "revoke at another client",
            &format!("client_id=cli&token={rt}"),
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
        )
    });
    for c in all {
        let r = app
            .raw(
                Method::POST,
                c.path,
                c.content_type,
                c.auth.as_deref(),
                c.body,
            )
            .await;
        assert_eq!(r.status, c.status, "{}: {:?}", c.name, r.body);
        assert_eq!(r.error(), c.error, "{}: {:?}", c.name, r.body);
        assert!(
            r.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{}: description",
            c.name
        );
    }
    assert_eq!(
        fingerprint(&app, &rt).await,
        before,
        "bad input changed the database"
    );
    // The server and the token still work after all that.
    assert_eq!(app.refresh(&rt).await.status, StatusCode::OK);
}

async fn admin_api_rejects_bad_input_without_side_effects(app: TestApp) {
    let admin = app.admin_token().await;
    let rt = app.alice(None).await.str("refresh_token");
    let before = fingerprint(&app, &rt).await;
    let auth = format!("Bearer {admin}");
    type Row = (
        &'static str,
        Method,
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        StatusCode,
    );
    let table: Vec<Row> = vec![
        (
            "form instead of JSON",
            Method::POST,
            "/admin/realms/test/users",
            Some("application/x-www-form-urlencoded"),
            b"username=x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "malformed JSON",
            Method::POST,
            "/admin/realms/test/users",
            Some("application/json"),
            b"{\"username\":".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong field type",
            Method::POST,
            "/admin/realms/test/users",
            Some("application/json"),
            br#"{"username": 5}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing username",
            Method::POST,
            "/admin/realms/test/users",
            Some("application/json"),
            br#"{"email": "x@y"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "duplicate user",
            Method::POST,
            "/admin/realms/test/users",
            Some("application/json"),
            br#"{"username": "ALICE"}"#.to_vec(),
            StatusCode::CONFLICT,
        ),
        (
            "empty password",
            Method::POST,
            "/admin/realms/test/users",
            Some("application/json"),
            br#"{"username": "carol", "credentials": [{"type": "password", "value": ""}]}"#
                .to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "duplicate client",
            Method::POST,
            "/admin/realms/test/clients",
            Some("application/json"),
            br#"{"clientId": "app"}"#.to_vec(),
            StatusCode::CONFLICT,
        ),
        (
            "bad redirect URI",
            Method::POST,
            "/admin/realms/test/clients",
            Some("application/json"),
            br#"{"clientId": "x", "redirectUris": ["not a url"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad realm name",
            Method::POST,
            "/admin/realms",
            Some("application/json"),
            br#"{"realm": "a/b"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad algorithm",
            Method::POST,
            "/admin/realms",
            Some("application/json"),
            br#"{"realm": "x", "defaultSignatureAlgorithm": "HS256"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown realm",
            Method::GET,
            "/admin/realms/nope/users",
            None,
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            "unknown user",
            Method::GET,
            "/admin/realms/test/users/00000000-0000-0000-0000-000000000000",
            None,
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            "oversized",
            Method::POST,
            "/admin/realms/test/users",
            Some("application/json"),
            format!(r#"{{"username": "{}"}}"#, "x".repeat(2 * 1024 * 1024)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "delete master",
            Method::DELETE,
            "/admin/realms/master",
            None,
            vec![],
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, method, path, ct, body, status) in table {
        let r = app.raw(method, path, ct, Some(&auth), body).await;
        assert_eq!(r.status, status, "{name}: {:?}", r.body);
        assert!(
            r.body["errorMessage"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}: {:?}",
            r.body
        );
    }
    assert_eq!(
        fingerprint(&app, &rt).await,
        before,
        "bad admin input changed the database"
    );
}

async fn unknown_routes_and_methods(app: TestApp) {
    assert_eq!(
        app.get("/realms/test/nope", None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .get("/realms/test/protocol/openid-connect/token", None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = app
        .get("/realms/ghost/.well-known/openid-configuration", None)
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::NOT_FOUND, "not_found"));
}

on_both_backends!(
    protocol_endpoints_reject_bad_input_without_side_effects,
    admin_api_rejects_bad_input_without_side_effects,
    unknown_routes_and_methods,
);
