//! The Admin REST API: who may call it, and realms, clients and users in
//! Keycloak's representations — on both backends.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::json;

async fn only_master_admins_may_call_it(app: TestApp) {
    let r = app.get("/admin/realms", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.contains_key("www-authenticate"));
    assert_eq!(
        app.get("/admin/realms", Some("not.a.jwt")).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A valid token of a non-admin user in another realm.
    let alice = app.alice(None).await.str("access_token");
    assert_eq!(
        app.get("/admin/realms", Some(&alice)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A master-realm user without the admin role.
    let admin = app.admin_token().await;
    app.json(Method::POST, "/admin/realms/master/users", &admin,
        Some(json!({"username": "viewer", "credentials": [{"type": "password", "value": "viewer-pw"}]}))).await;
    let viewer = app
        .login_at(
            &TestApp::token_path("master"),
            "admin-cli",
            "viewer",
            "viewer-pw",
        )
        .await
        .str("access_token");
    assert_eq!(
        app.get("/admin/realms", Some(&viewer)).await.status,
        StatusCode::FORBIDDEN
    );
    // Granting the role takes effect immediately (roles are read from the database).
    let viewer_id = app.user_id("master", "viewer").await;
    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/master/users/{viewer_id}"),
            &admin,
            Some(json!({"realmRoles": ["admin"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/admin/realms", Some(&viewer)).await.status,
        StatusCode::OK
    );
    // A logged-out admin's token stops working.
    let t = app
        .login_at(
            &TestApp::token_path("master"),
            "admin-cli",
            "admin",
            common::ADMIN_PASSWORD,
        )
        .await;
    app.form(
        "/realms/master/protocol/openid-connect/logout",
        &[
            ("client_id", "admin-cli"),
            ("refresh_token", &t.str("refresh_token")),
        ],
    )
    .await;
    assert_eq!(
        app.get("/admin/realms", Some(&t.str("access_token")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn realm_lifecycle(app: TestApp) {
    let admin = app.admin_token().await;
    let r = app
        .json(Method::POST, "/admin/realms", &admin, Some(json!({"realm": "demo", "enabled": true, "accessTokenLifespan": 60, "someFutureField": {"x": 1}})))
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "unknown fields are ignored: {:?}",
        r.body
    );
    assert_eq!(
        r.body,
        serde_json::Value::Null,
        "python-keycloak wants an empty 201 body"
    );
    let r = app
        .json(
            Method::POST,
            "/admin/realms",
            &admin,
            Some(json!({"realm": "demo"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .json(Method::GET, "/admin/realms/demo", &admin, None)
        .await;
    assert_eq!(
        (
            r.body["realm"].as_str(),
            r.body["accessTokenLifespan"].as_i64()
        ),
        (Some("demo"), Some(60))
    );
    let names: Vec<_> = app
        .json(Method::GET, "/admin/realms", &admin, None)
        .await
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["realm"].clone())
        .collect();
    assert_eq!(names, vec![json!("demo"), json!("master"), json!("test")]);
    let r = app
        .json(
            Method::PUT,
            "/admin/realms/demo",
            &admin,
            Some(json!({"displayName": "Demo", "enabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // A disabled realm serves no protocol endpoints.
    assert_eq!(
        app.get("/realms/demo", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.json(Method::DELETE, "/admin/realms/demo", &admin, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.json(Method::GET, "/admin/realms/demo", &admin, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn client_lifecycle_and_secrets(app: TestApp) {
    let admin = app.admin_token().await;
    let r = app
        .json(
            Method::POST,
            "/admin/realms/test/clients",
            &admin,
            Some(json!({"clientId": "svc", "publicClient": false, "serviceAccountsEnabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.headers["location"]
        .to_str()
        .expect("ascii")
        .rsplit('/')
        .next()
        .expect("id")
        .to_string();
    let found = app
        .json(
            Method::GET,
            "/admin/realms/test/clients?clientId=svc",
            &admin,
            None,
        )
        .await;
    assert_eq!(found.body[0]["id"], id.as_str());
    assert_eq!(
        app.json(
            Method::GET,
            "/admin/realms/test/clients?clientId=sv",
            &admin,
            None
        )
        .await
        .body,
        json!([]),
        "exact by default"
    );
    assert_eq!(
        app.json(
            Method::GET,
            "/admin/realms/test/clients?clientId=sv&search=True",
            &admin,
            None
        )
        .await
        .body[0]["clientId"],
        "svc"
    );

    let secret = app
        .json(
            Method::GET,
            &format!("/admin/realms/test/clients/{id}/client-secret"),
            &admin,
            None,
        )
        .await;
    let s1 = secret.str("value");
    assert!(s1.len() >= 40, "generated secrets are long: {s1}");
    let cc = |s: String| {
        let app = &app;
        async move {
            app.form(
                &TestApp::token_path("test"),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "svc"),
                    ("client_secret", &s),
                ],
            )
            .await
        }
    };
    let t = cc(s1.clone()).await;
    assert_eq!(t.status, StatusCode::OK);
    let sa = app
        .json(
            Method::GET,
            &format!("/admin/realms/test/clients/{id}/service-account-user"),
            &admin,
            None,
        )
        .await;
    assert_eq!(sa.body["username"], "service-account-svc");
    assert_eq!(common::claims(&t.str("access_token"))["sub"], sa.body["id"]);
    // Only the hash is stored.
    let realm = app
        .store
        .realm_by_name("test")
        .await
        .expect("db")
        .expect("realm");
    let stored = app
        .store
        .client(&realm.id, &id)
        .await
        .expect("db")
        .expect("client");
    assert_eq!(
        stored.secret_hash.as_ref().map(|h| h.as_str().to_string()),
        Some(tessera_core::TokenHash::of(&s1).as_str().to_string())
    );

    let regen = app
        .json(
            Method::POST,
            &format!("/admin/realms/test/clients/{id}/client-secret"),
            &admin,
            None,
        )
        .await;
    let s2 = regen.str("value");
    assert_ne!(s1, s2);
    assert_eq!(
        cc(s1).await.error(),
        "invalid_client",
        "the old secret stops working"
    );
    assert_eq!(cc(s2).await.status, StatusCode::OK);

    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/clients/{id}"),
            &admin,
            Some(json!({"serviceAccountsEnabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let got = app
        .json(
            Method::GET,
            &format!("/admin/realms/test/clients/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(got.body["serviceAccountsEnabled"], false);
    assert_eq!(got.body["publicClient"], false, "PUT is partial");
    assert_eq!(
        app.json(
            Method::DELETE,
            &format!("/admin/realms/test/clients/{id}"),
            &admin,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.json(
            Method::GET,
            &format!("/admin/realms/test/clients/{id}"),
            &admin,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

async fn user_lifecycle_and_queries(app: TestApp) {
    let admin = app.admin_token().await;
    let r = app
        .json(Method::POST, "/admin/realms/test/users", &admin,
            Some(json!({"username": "Carol", "email": "Carol@Example.test", "firstName": "Carol", "attributes": {"team": ["ide"]}})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.headers["location"]
        .to_str()
        .expect("ascii")
        .rsplit('/')
        .next()
        .expect("id")
        .to_string();
    let q = |path: String| {
        let (app, admin) = (&app, admin.clone());
        async move { app.json(Method::GET, &path, &admin, None).await.body }
    };
    let exact = q("/admin/realms/test/users?username=carol&exact=True&max=1".into()).await;
    assert_eq!(exact[0]["id"], id.as_str());
    assert_eq!(exact[0]["username"], "carol", "usernames are lower-cased");
    assert_eq!(exact[0]["email"], "carol@example.test");
    assert_eq!(exact[0]["attributes"]["team"], json!(["ide"]));
    assert_eq!(
        q("/admin/realms/test/users?username=car&exact=true".into()).await,
        json!([])
    );
    assert_eq!(
        q("/admin/realms/test/users?search=EXAMPLE".into())
            .await
            .as_array()
            .expect("list")
            .len(),
        3
    );
    assert_eq!(
        q("/admin/realms/test/users?first=1&max=1".into()).await[0]["username"],
        "bob"
    );
    assert_eq!(q("/admin/realms/test/users/count".into()).await, json!(3));

    // No password yet: cannot sign in. Reset it, then sign in.
    let path = TestApp::token_path("test");
    let login = |pw: &'static str| {
        let (app, path) = (&app, path.clone());
        async move { app.login_at(&path, "cli", "carol", pw).await }
    };
    assert_eq!(login("carol-pw").await.status, StatusCode::UNAUTHORIZED);
    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/users/{id}/reset-password"),
            &admin,
            Some(json!({"type": "password", "value": "carol-pw", "temporary": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(login("carol-pw").await.status, StatusCode::OK);
    let stored = app
        .store
        .user(
            &app.store
                .realm_by_name("test")
                .await
                .expect("db")
                .expect("r")
                .id,
            &id,
        )
        .await
        .expect("db")
        .expect("user");
    assert!(
        stored
            .password_hash
            .as_deref()
            .is_some_and(|h| h.starts_with("$argon2id$")),
        "argon2id hash stored"
    );

    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/users/{id}"),
            &admin,
            Some(json!({"lastName": "Jones", "username": "bob"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "rename onto an existing user"
    );
    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/users/{id}"),
            &admin,
            Some(json!({"lastName": "Jones"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        q(format!("/admin/realms/test/users/{id}")).await["lastName"],
        "Jones"
    );
    assert_eq!(
        app.json(
            Method::DELETE,
            &format!("/admin/realms/test/users/{id}"),
            &admin,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(login("carol-pw").await.status, StatusCode::UNAUTHORIZED);
}

/// Keycloak's realm attributes: set on create, merged on update (a `null`
/// or empty value removes one), bounded, and a refused update changes
/// nothing.
async fn realm_attributes(app: TestApp) {
    let admin = app.admin_token().await;
    let attributes = || async {
        app.json(Method::GET, "/admin/realms/attrs", &admin, None)
            .await
            .body["attributes"]
            .clone()
    };
    let r = app
        .json(Method::POST, "/admin/realms", &admin, Some(json!({"realm": "attrs",
            "attributes": {"frontendUrl": "https://id.example", "tessera.resources": "https://mcp.example/"}})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        attributes().await,
        json!({"frontendUrl": "https://id.example", "tessera.resources": "https://mcp.example/"})
    );
    let put = |body: serde_json::Value| {
        let (app, admin) = (&app, admin.clone());
        async move {
            app.json(Method::PUT, "/admin/realms/attrs", &admin, Some(body))
                .await
        }
    };
    let r =
        put(json!({"attributes": {"frontendUrl": null, "tessera.resources": "", "a": "1"}})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(attributes().await, json!({"a": "1"}));
    let r = put(json!({"displayName": "Attrs"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(attributes().await, json!({"a": "1"}), "absent means keep");

    // Refused, and nothing of the request is applied.
    let many: serde_json::Map<String, serde_json::Value> =
        (0..100).map(|i| (format!("k{i}"), json!("v"))).collect();
    for bad in [
        json!({"displayName": "Changed", "attributes": {"b": "x".repeat(4097)}}),
        json!({"displayName": "Changed", "attributes": {"": "x"}}),
        json!({"displayName": "Changed", "attributes": {"line\nbreak": "x"}}),
        json!({"displayName": "Changed", "attributes": many}),
        json!({"displayName": "Changed", "attributes": {"a": 1}}),
    ] {
        let r = put(bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        assert!(
            r.body["errorMessage"].is_string() || r.body["error"].is_string(),
            "{:?}",
            r.body
        );
    }
    let realm = app
        .json(Method::GET, "/admin/realms/attrs", &admin, None)
        .await;
    assert_eq!(realm.body["displayName"], "Attrs");
    assert_eq!(realm.body["attributes"], json!({"a": "1"}));
}

on_both_backends!(
    only_master_admins_may_call_it,
    realm_lifecycle,
    realm_attributes,
    client_lifecycle_and_secrets,
    user_lifecycle_and_queries,
);
