//! Signing keys through the HTTP surface: JWKS and realm public key, rotation
//! with overlap, per-realm algorithms — on both backends.

mod common;

use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{header, TestApp};
use serde_json::json;

async fn jwks(app: &TestApp, realm: &str) -> Vec<serde_json::Value> {
    let r = app
        .get(
            &format!("/realms/{realm}/protocol/openid-connect/certs"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.body["keys"].as_array().expect("keys").clone()
}

async fn realm_key_is_published_and_verifies_tokens(app: TestApp) {
    let keys = jwks(&app, "test").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (
            keys[0]["kty"].as_str(),
            keys[0]["alg"].as_str(),
            keys[0]["use"].as_str()
        ),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    let token = app.alice(None).await.str("access_token");
    assert_eq!(header(&token)["kid"], keys[0]["kid"]);
    let info = app.get("/realms/test", None).await;
    let der = STANDARD.decode(info.str("public_key")).expect("base64 DER");
    let v =
        tessera_keys::VerifyingKey::from_spki(String::new(), tessera_core::SigningAlg::RS256, &der)
            .expect("SPKI");
    assert!(
        tessera_keys::verify_compact(&token, &v).is_ok(),
        "realm public_key verifies access tokens"
    );
    // Realms have separate keys.
    assert_ne!(jwks(&app, "master").await[0]["kid"], keys[0]["kid"]);
}

async fn rotation_keeps_old_tokens_verifiable(app: TestApp) {
    let admin = app.admin_token().await;
    let old = app.alice(None).await.str("access_token");
    let old_kid = header(&old)["kid"].clone();
    let r = app
        .json(Method::POST, "/admin/realms/test/keys/rotate", &admin, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let new_kid = r.body["active"]["RS256"].clone();
    assert_ne!(new_kid, old_kid);
    let kids: Vec<_> = jwks(&app, "test")
        .await
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "both keys published: {kids:?}"
    );
    let new = app.alice(None).await.str("access_token");
    assert_eq!(header(&new)["kid"], new_kid, "the new key signs");
    for t in [&old, &new] {
        assert_eq!(
            app.get("/realms/test/protocol/openid-connect/userinfo", Some(t))
                .await
                .status,
            StatusCode::OK
        );
    }
    let listing = app
        .json(Method::GET, "/admin/realms/test/keys", &admin, None)
        .await;
    let statuses: Vec<_> = listing.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("ACTIVE"), json!("PASSIVE")]);
}

async fn realms_can_sign_with_es256_and_eddsa(app: TestApp) {
    let admin = app.admin_token().await;
    for (alg, kty) in [("ES256", "EC"), ("EdDSA", "OKP")] {
        let realm = format!("r-{}", alg.to_lowercase());
        let r = app
            .json(
                Method::POST,
                "/admin/realms",
                &admin,
                Some(json!({"realm": realm, "defaultSignatureAlgorithm": alg})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert!(r.headers["location"]
            .to_str()
            .expect("ascii")
            .ends_with(&format!("/admin/realms/{realm}")));
        app.json(Method::POST, &format!("/admin/realms/{realm}/clients"), &admin,
            Some(json!({"clientId": "svc", "secret": "svc-secret-0123456789", "serviceAccountsEnabled": true}))).await;
        let t = app
            .form(
                &TestApp::token_path(&realm),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "svc"),
                    ("client_secret", "svc-secret-0123456789"),
                ],
            )
            .await;
        assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
        let token = t.str("access_token");
        assert_eq!(header(&token)["alg"], alg);
        let keys = jwks(&app, &realm).await;
        assert_eq!(keys[0]["kty"], kty);
        let r = app
            .form(
                &format!("/realms/{realm}/protocol/openid-connect/token/introspect"),
                &[
                    ("client_id", "svc"),
                    ("client_secret", "svc-secret-0123456789"),
                    ("token", &token),
                ],
            )
            .await;
        assert_eq!(r.body["active"], true, "{alg} tokens verify");
    }
    // Switching a realm's algorithm rotates its key; old tokens still verify.
    let before = app.alice(None).await.str("access_token");
    let r = app
        .json(
            Method::PUT,
            "/admin/realms/test",
            &admin,
            Some(json!({"defaultSignatureAlgorithm": "ES256"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let after = app.alice(None).await.str("access_token");
    assert_eq!(header(&after)["alg"], "ES256");
    for t in [&before, &after] {
        assert_eq!(
            app.get("/realms/test/protocol/openid-connect/userinfo", Some(t))
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = app
        .get("/realms/test/.well-known/openid-configuration", None)
        .await;
    assert_eq!(
        r.body["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
}

on_both_backends!(
    realm_key_is_published_and_verifies_tokens,
    rotation_keeps_old_tokens_verifiable,
    realms_can_sign_with_es256_and_eddsa,
);
