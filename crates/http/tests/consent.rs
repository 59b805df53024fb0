//! Public-key consent login (Verida) through the router, on both backends:
//! the happy paths for Ethereum and did:key wallets, the negative table from
//! the issue (every row must fail and change nothing), device sign-out, app
//! connections in the Admin API, and garbage collection under load.

mod common;

use axum::http::{Method, StatusCode};
use common::{claims, Backend, Resp, TestApp};
use serde_json::{json, Value};
use sha3::{Digest, Keccak256};
use tessera_core::time::now_ms;
use tessera_oauth::events::ServerEvent;
use tessera_oauth::OAuthConfig;

const CTX: &str = "Verida: Test App";
const DEVICE: &str = "device-1";

/// An Ethereum wallet that signs like `personal_sign`.
struct EthWallet {
    key: k256::ecdsa::SigningKey,
    did: String,
}

impl EthWallet {
    fn new() -> Self {
        let key = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let point = key.verifying_key().to_encoded_point(false);
        let address = &Keccak256::digest(&point.as_bytes()[1..])[12..];
        // Checksum-style casing must not matter: upper-case the hex.
        let did = format!("did:vda:testnet:0x{}", hex::encode_upper(address));
        Self { key, did }
    }

    fn sign(&self, message: &str) -> String {
        let prefixed = format!("\x19Ethereum Signed Message:\n{}{message}", message.len());
        let digest = Keccak256::digest(prefixed.as_bytes());
        let (sig, recid) = self.key.sign_prehash_recoverable(&digest).expect("sign");
        let mut out = sig.to_bytes().to_vec();
        out.push(27 + recid.to_byte());
        format!("0x{}", hex::encode(out))
    }

    /// The DID as the server normalises it (and as the message must carry it).
    fn normalized(&self) -> String {
        self.did.to_lowercase()
    }
}

fn auth_message(ctx: &str, did: &str, auth_request_id: &str) -> String {
    format!("Authenticate this application context: \"{ctx}\"?\n\n{did}\n{auth_request_id}")
}

fn invalidate_message(ctx: &str, did: &str, device: &str) -> String {
    format!("Invalidate device for this application context: \"{ctx}\"?\n\n{did}\n{device}")
}

async fn post(app: &TestApp, path: &str, body: Value) -> Resp {
    app.raw(
        Method::POST,
        path,
        Some("application/json"),
        None,
        serde_json::to_vec(&body).expect("json"),
    )
    .await
}

fn fail(r: &Resp, status: StatusCode, message_part: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["status"], "fail", "{}", r.body);
    let message = r.body["message"].as_str().unwrap_or("");
    assert!(
        message
            .to_lowercase()
            .contains(&message_part.to_lowercase()),
        "{message:?} should mention {message_part:?}"
    );
}

async fn challenge(app: &TestApp, did: &str, ctx: &str) -> (String, String) {
    let r = post(
        app,
        "/auth/generateAuthJwt",
        json!({"did": did, "contextName": ctx}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "success");
    let jwt = &r.body["authJwt"];
    (
        jwt["authJwt"].as_str().expect("authJwt").to_string(),
        jwt["authRequestId"]
            .as_str()
            .expect("authRequestId")
            .to_string(),
    )
}

/// A full login: returns (refreshToken, accessToken).
async fn login(app: &TestApp, w: &EthWallet, ctx: &str, device: &str) -> (String, String) {
    let (jwt, id) = challenge(app, &w.did, ctx).await;
    let r = post(
        app,
        "/auth/authenticate",
        json!({"authJwt": jwt, "did": w.did, "contextName": ctx, "deviceId": device,
               "signature": w.sign(&auth_message(ctx, &w.normalized(), &id)),
               "origin": "https://app.example"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    (r.str("refreshToken"), r.str("accessToken"))
}

async fn connect(app: &TestApp, refresh: &str, did: &str, ctx: &str) -> Resp {
    post(
        app,
        "/auth/connect",
        json!({"refreshToken": refresh, "did": did, "contextName": ctx}),
    )
    .await
}

async fn consent_app(backend: Backend, tune: impl FnOnce(&mut OAuthConfig)) -> Option<TestApp> {
    common::app_in_realm_with(backend, "test", tune).await
}

/// Sessions of the DID's user in realm `test` (0 if the user does not exist).
async fn did_sessions(app: &TestApp, did: &str) -> usize {
    let store = &app.store;
    let realm = store
        .realm_by_name("test")
        .await
        .expect("db")
        .expect("realm");
    let Some(user) = store
        .user_by_username(&realm.id, &did.to_lowercase())
        .await
        .expect("db")
    else {
        return 0;
    };
    store
        .user_sessions(&realm.id, &user.id, now_ms())
        .await
        .expect("db")
        .len()
}

async fn ethereum_flow_end_to_end(app: TestApp) {
    let w = EthWallet::new();
    let (refresh, access) = login(&app, &w, CTX, DEVICE).await;

    // The access token: Verida's claims, signed with the realm key.
    let c = claims(&access);
    let username = format!(
        "v{}",
        hex::encode(Keccak256::digest(format!("{}/{CTX}", w.normalized())))
    );
    assert_eq!(c["sub"], json!(username));
    assert_eq!(c["did"], json!(w.normalized()));
    assert_eq!(c["contextName"], CTX);
    assert_eq!(c["type"], "access");
    assert_eq!(c["iss"], "http://tessera.test/realms/test");
    assert_eq!(
        c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
        300
    );
    let certs = app
        .get("/realms/test/protocol/openid-connect/certs", None)
        .await;
    let jwk: tessera_keys::Jwk =
        serde_json::from_value(certs.body["keys"][0].clone()).expect("jwk");
    let key = tessera_keys::VerifyingKey::from_jwk(&jwk).expect("key");
    assert!(tessera_keys::verify_compact(&access, &key).is_ok());

    // isTokenValid: 30 days.
    let r = post(
        &app,
        "/auth/isTokenValid",
        json!({"refreshToken": refresh, "contextName": CTX}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let expires = r.body["expires"].as_i64().expect("expires");
    let in_30_days = now_ms() / 1000 + 30 * 86_400;
    assert!((in_30_days - expires).abs() < 10, "{expires}");

    // connect: a fresh access token and the host.
    let r = connect(&app, &refresh, &w.did, CTX).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.str("host"), "http://tessera.test");
    assert_eq!(claims(&r.str("accessToken"))["sub"], json!(username));

    // The storage node's own API takes the access token through the layer.
    let r = app.get("/auth/session", Some(&access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["did"], json!(w.normalized()));
    assert_eq!(r.body["contextName"], CTX);
    assert_eq!(r.body["deviceId"], DEVICE);
    assert_eq!(r.body["origin"], "https://app.example");

    // regenerateRefreshToken: the old token dies at once.
    let r = post(
        &app,
        "/auth/regenerateRefreshToken",
        json!({"refreshToken": refresh, "did": w.did, "contextName": CTX}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let renewed = r.str("refreshToken");
    assert_ne!(renewed, refresh);
    // Its answer may have been lost: asked again, the same successor.
    let again = post(
        &app,
        "/auth/regenerateRefreshToken",
        json!({"refreshToken": refresh, "did": w.did, "contextName": CTX}),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.str("refreshToken"), renewed);
    fail(
        &connect(&app, &refresh, &w.did, CTX).await,
        StatusCode::UNAUTHORIZED,
        "already used",
    );
    assert_eq!(
        connect(&app, &renewed, &w.did, CTX).await.status,
        StatusCode::OK
    );

    // The same realm-scoped, under /realms/{realm}/consent and /auth/realms/...
    let r = post(
        &app,
        "/auth/realms/test/consent/isTokenValid",
        json!({"refreshToken": renewed, "contextName": CTX}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post(
        &app,
        "/realms/master/consent/isTokenValid",
        json!({"refreshToken": renewed, "contextName": CTX}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "another realm's token");
    assert_eq!(r.body, json!({"status": "fail"}));
}

async fn did_key_wallets_sign_with_ed25519(app: TestApp) {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let sk = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let mut multicodec = vec![0xed, 0x01];
    multicodec.extend_from_slice(sk.verifying_key().as_bytes());
    let did = format!("did:key:z{}", bs58::encode(multicodec).into_string());
    for encode in [
        |b: &[u8]| hex::encode(b),
        |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
    ] {
        let (jwt, id) = challenge(&app, &did, CTX).await;
        let sig = sk.sign(auth_message(CTX, &did, &id).as_bytes());
        let r = post(
            &app,
            "/auth/authenticate",
            json!({"authJwt": jwt, "did": did, "contextName": CTX, "deviceId": DEVICE,
                   "signature": encode(&sig.to_bytes())}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(claims(&r.str("accessToken"))["did"], json!(did));
    }
    // did:key is case-sensitive: another casing is another (invalid) key.
    let swapped: String = did
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() && c != 'z' {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let r = post(
        &app,
        "/auth/generateAuthJwt",
        json!({"did": swapped, "contextName": CTX}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

/// Every row of the negative table: refused with the right status,
/// and no session is created.
async fn negative_table(app: TestApp) {
    let w = EthWallet::new();
    let other = EthWallet::new();
    let auth = |jwt: &str, did: &str, ctx: &str, sig: &str| json!({"authJwt": jwt, "did": did, "contextName": ctx, "deviceId": DEVICE, "signature": sig});

    // Signature by another key.
    let (jwt, id) = challenge(&app, &w.did, CTX).await;
    let sig = other.sign(&auth_message(CTX, &w.normalized(), &id));
    fail(
        &post(&app, "/auth/authenticate", auth(&jwt, &w.did, CTX, &sig)).await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    // Signature over a different context.
    let sig = w.sign(&auth_message("Other App", &w.normalized(), &id));
    fail(
        &post(&app, "/auth/authenticate", auth(&jwt, &w.did, CTX, &sig)).await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    // The invalidate message used to authenticate.
    let sig = w.sign(&invalidate_message(CTX, &w.normalized(), &id));
    fail(
        &post(&app, "/auth/authenticate", auth(&jwt, &w.did, CTX, &sig)).await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    // The DID as given (mixed case) in the message instead of the normalised one.
    let sig = w.sign(&auth_message(CTX, &w.did, &id));
    fail(
        &post(&app, "/auth/authenticate", auth(&jwt, &w.did, CTX, &sig)).await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    // Malformed signatures: wrong length, bad hex, bad v, high s.
    let good = w.sign(&auth_message(CTX, &w.normalized(), &id));
    let raw = hex::decode(&good[2..]).expect("hex");
    let high_s = {
        let sig = k256::ecdsa::Signature::from_slice(&raw[..64]).expect("sig");
        let (r, s) = sig.split_scalars();
        let flipped = k256::ecdsa::Signature::from_scalars(r, -*s).expect("scalars");
        let mut b = flipped.to_bytes().to_vec();
        b.push(55 - raw[64]); // 27 <-> 28: the twin's recovery id
        format!("0x{}", hex::encode(b))
    };
    let bad_v = {
        let mut b = raw.clone();
        b[64] = 29;
        format!("0x{}", hex::encode(b))
    };
    for (sig, why) in [
        (good[..good.len() - 2].to_string(), "length"),
        (format!("0x{}", "zz".repeat(65)), "hex"),
        (bad_v, "recovery id"),
        (high_s, "lower half"),
        ("ab".repeat(300), "signature"),
    ] {
        fail(
            &post(&app, "/auth/authenticate", auth(&jwt, &w.did, CTX, &sig)).await,
            StatusCode::BAD_REQUEST,
            why,
        );
    }
    // Auth JWT issued for another DID, or for another context.
    let sig = other.sign(&auth_message(CTX, &other.normalized(), &id));
    fail(
        &post(
            &app,
            "/auth/authenticate",
            auth(&jwt, &other.did, CTX, &sig),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "another DID or context",
    );
    let sig = w.sign(&auth_message("Other App", &w.normalized(), &id));
    fail(
        &post(
            &app,
            "/auth/authenticate",
            auth(&jwt, &w.did, "Other App", &sig),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "another DID or context",
    );
    // A tampered or foreign auth JWT.
    let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
    parts[2] = parts[2].chars().rev().collect();
    fail(
        &post(
            &app,
            "/auth/authenticate",
            auth(&parts.join("."), &w.did, CTX, &good),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "auth jwt",
    );
    let oauth_token = app.alice(None).await.str("access_token");
    fail(
        &post(
            &app,
            "/auth/authenticate",
            auth(&oauth_token, &w.did, CTX, &good),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "auth jwt",
    );
    assert_eq!(did_sessions(&app, &w.did).await, 0, "nothing was created");

    // The challenge survived every refused attempt; now it works once.
    let ok = post(&app, "/auth/authenticate", auth(&jwt, &w.did, CTX, &good)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // Replayed auth JWT (well within its 60 s).
    fail(
        &post(&app, "/auth/authenticate", auth(&jwt, &w.did, CTX, &good)).await,
        StatusCode::UNAUTHORIZED,
        "already been used",
    );
    assert_eq!(did_sessions(&app, &w.did).await, 1);

    // An Origin header that is not an http(s) origin (a browser extension)
    // is ignored, not an error; a stated origin must be one.
    let (jwt2, id2) = challenge(&app, &w.did, CTX).await;
    let body = auth(
        &jwt2,
        &w.did,
        CTX,
        &w.sign(&auth_message(CTX, &w.normalized(), &id2)),
    );
    let mut stated = body.clone();
    stated["origin"] = json!("chrome-extension://abcdef");
    fail(
        &post(&app, "/auth/authenticate", stated).await,
        StatusCode::BAD_REQUEST,
        "origin",
    );
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/auth/authenticate")
        .header("content-type", "application/json")
        .header("origin", "chrome-extension://abcdef")
        .body(axum::body::Body::from(
            serde_json::to_vec(&body).expect("json"),
        ))
        .expect("request");
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A realm name PostgreSQL could not even take is simply not a realm.
    fail(
        &post(&app, "/realms/%00/consent/connect", json!({})).await,
        StatusCode::NOT_FOUND,
        "realm",
    );

    // Unknown DID method; malformed DID; huge context name; missing fields.
    for (did, ctx, why) in [
        ("did:web:example.com", CTX, "unsupported DID method"),
        ("did:ion:EiAbc", CTX, "unsupported DID method"),
        ("not-a-did", CTX, "not a DID"),
        ("did:ethr:0x1234", CTX, "Ethereum address"),
    ] {
        fail(
            &post(
                &app,
                "/auth/generateAuthJwt",
                json!({"did": did, "contextName": ctx}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            why,
        );
    }
    let huge = "x".repeat(300);
    fail(
        &post(
            &app,
            "/auth/generateAuthJwt",
            json!({"did": w.did, "contextName": huge}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "context name",
    );
    let forged = "App\"?\n\ndid:ethr:0xabc";
    fail(
        &post(
            &app,
            "/auth/generateAuthJwt",
            json!({"did": w.did, "contextName": forged}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "context name",
    );
    fail(
        &post(&app, "/auth/generateAuthJwt", json!({"did": w.did})).await,
        StatusCode::BAD_REQUEST,
        "contextName",
    );
    let r = app
        .raw(
            Method::POST,
            "/auth/generateAuthJwt",
            Some("application/json"),
            None,
            b"{not json".to_vec(),
        )
        .await;
    fail(&r, StatusCode::BAD_REQUEST, "invalid request");
    let r = app
        .raw(
            Method::POST,
            "/auth/connect",
            Some("application/json"),
            None,
            vec![b' '; 64 * 1024],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["status"], "fail");
}

async fn expired_auth_jwt_is_refused(app: TestApp) {
    let w = EthWallet::new();
    let (jwt, id) = challenge(&app, &w.did, CTX).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = post(
        &app,
        "/auth/authenticate",
        json!({"authJwt": jwt, "did": w.did, "contextName": CTX, "deviceId": DEVICE,
               "signature": w.sign(&auth_message(CTX, &w.normalized(), &id))}),
    )
    .await;
    fail(&r, StatusCode::UNAUTHORIZED, "expired");
    assert_eq!(did_sessions(&app, &w.did).await, 0);
}

async fn concurrent_answers_to_one_challenge_win_once(app: TestApp) {
    let w = EthWallet::new();
    let (jwt, id) = challenge(&app, &w.did, CTX).await;
    let body = json!({"authJwt": jwt, "did": w.did, "contextName": CTX, "deviceId": DEVICE,
                      "signature": w.sign(&auth_message(CTX, &w.normalized(), &id))});
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            let body = body.clone();
            tokio::spawn(async move { post(&app, "/auth/authenticate", body).await.status })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("join") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(did_sessions(&app, &w.did).await, 1);
}

async fn refresh_tokens_are_bound_to_context_and_did(app: TestApp) {
    let w = EthWallet::new();
    let other = EthWallet::new();
    let (refresh, _) = login(&app, &w, "App A", DEVICE).await;
    fail(
        &connect(&app, &refresh, &w.did, "App B").await,
        StatusCode::UNAUTHORIZED,
        "another context",
    );
    fail(
        &connect(&app, &refresh, &other.did, "App A").await,
        StatusCode::UNAUTHORIZED,
        "another DID",
    );
    let r = post(
        &app,
        "/auth/isTokenValid",
        json!({"refreshToken": refresh, "contextName": "App B"}),
    )
    .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::UNAUTHORIZED, json!({"status": "fail"}))
    );
    fail(
        &post(
            &app,
            "/auth/regenerateRefreshToken",
            json!({"refreshToken": refresh, "contextName": "App B"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "another context",
    );
    // Nothing was spent by the refused calls.
    assert_eq!(
        connect(&app, &refresh, &w.did, "App A").await.status,
        StatusCode::OK
    );
    fail(
        &connect(&app, "not-a-token", &w.did, "App A").await,
        StatusCode::UNAUTHORIZED,
        "invalid refresh token",
    );

    // Consent and OAuth tokens never cross over.
    let oauth = app.alice(None).await;
    fail(
        &connect(&app, &oauth.str("refresh_token"), &w.did, "App A").await,
        StatusCode::UNAUTHORIZED,
        "another context",
    );
    let r = app
        .form(
            &TestApp::token_path("test"),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "tessera-consent"),
                ("refresh_token", &refresh),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error(), "invalid_grant");
    let access = claims(
        &connect(&app, &refresh, &w.did, "App A")
            .await
            .str("accessToken"),
    );
    assert_eq!(access["typ"], "Consent");
    let (_, consent_access) = login(&app, &w, "App A", DEVICE).await;
    let r = app
        .get(
            "/realms/test/protocol/openid-connect/userinfo",
            Some(&consent_access),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "userinfo refuses consent tokens"
    );
    let r = app.get("/api/workspace", Some(&consent_access)).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the Che API refuses consent tokens"
    );
    let r = app
        .get("/auth/session", Some(&oauth.str("access_token")))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "/auth/session refuses OAuth tokens"
    );
}

async fn reusing_a_rotated_token_ends_the_session(app: TestApp) {
    let w = EthWallet::new();
    let (refresh, access) = login(&app, &w, CTX, DEVICE).await;
    let regen = |t: String| {
        let app = &app;
        let did = w.did.clone();
        async move {
            post(
                app,
                "/auth/regenerateRefreshToken",
                json!({"refreshToken": t, "did": did, "contextName": CTX}),
            )
            .await
        }
    };
    let renewed = regen(refresh.clone()).await.str("refreshToken");
    // Grace is 0 in this app: the reuse is theft, and the session ends.
    fail(
        &regen(refresh).await,
        StatusCode::UNAUTHORIZED,
        "already used",
    );
    fail(
        &connect(&app, &renewed, &w.did, CTX).await,
        StatusCode::UNAUTHORIZED,
        "invalid refresh token",
    );
    assert_eq!(did_sessions(&app, &w.did).await, 0);
    let r = app.get("/auth/session", Some(&access)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

async fn invalidating_a_device_ends_all_its_sessions(app: TestApp) {
    let w = EthWallet::new();
    let other = EthWallet::new();
    let mut events = app.state.services.sessions.subscribe();
    let (phone1, _) = login(&app, &w, CTX, "phone").await;
    let (phone2, _) = login(&app, &w, CTX, "phone").await;
    let (laptop, _) = login(&app, &w, CTX, "laptop").await;
    let (other_ctx, _) = login(&app, &w, "Other App", "phone").await;
    let invalidate = |sig: String, did: &str| json!({"did": did, "contextName": CTX, "deviceId": "phone", "signature": sig});
    // Signed by another DID, or the authenticate message: refused, nothing ends.
    let sig = other.sign(&invalidate_message(CTX, &w.normalized(), "phone"));
    fail(
        &post(&app, "/auth/invalidateDeviceId", invalidate(sig, &w.did)).await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    let sig = w.sign(&auth_message(CTX, &w.normalized(), "phone"));
    fail(
        &post(&app, "/auth/invalidateDeviceId", invalidate(sig, &w.did)).await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    assert_eq!(did_sessions(&app, &w.did).await, 4);

    let sig = w.sign(&invalidate_message(CTX, &w.normalized(), "phone"));
    let r = post(&app, "/auth/invalidateDeviceId", invalidate(sig, &w.did)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["revoked"], 2,
        "both phone sessions, not just the first"
    );
    for t in [&phone1, &phone2] {
        fail(
            &connect(&app, t, &w.did, CTX).await,
            StatusCode::UNAUTHORIZED,
            "invalid refresh token",
        );
    }
    assert_eq!(
        connect(&app, &laptop, &w.did, CTX).await.status,
        StatusCode::OK
    );
    assert_eq!(
        connect(&app, &other_ctx, &w.did, "Other App").await.status,
        StatusCode::OK
    );
    let mut ended = Vec::new();
    while let Ok(ServerEvent::SessionRevoked { session_id, .. }) = events.try_recv() {
        ended.push(session_id);
    }
    assert_eq!(
        ended.len(),
        2,
        "sockets of both sessions are told: {ended:?}"
    );
}

async fn app_connections_show_in_the_admin_api(app: TestApp) {
    let w = EthWallet::new();
    let (refresh, _) = login(&app, &w, CTX, DEVICE).await;
    let admin = app.admin_token().await;
    let user = app.user_id("test", &w.normalized()).await;
    let r = app
        .json(
            Method::GET,
            &format!("/admin/realms/test/users/{user}/sessions"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let s = &r.body[0];
    assert_eq!(s["contextName"], CTX);
    assert_eq!(s["origin"], "https://app.example");
    assert_eq!(s["deviceId"], DEVICE);
    assert!(s["clients"]
        .as_object()
        .expect("clients")
        .values()
        .any(|c| c == "tessera-consent"));
    let u = app
        .json(
            Method::GET,
            &format!("/admin/realms/test/users/{user}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(u.body["attributes"]["did"], json!([w.normalized()]));

    let mut events = app.state.services.sessions.subscribe();
    let sid = s["id"].as_str().expect("id");
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
        events.try_recv().ok(),
        Some(ServerEvent::SessionRevoked {
            user_id: user.clone(),
            session_id: sid.to_string()
        })
    );
    fail(
        &connect(&app, &refresh, &w.did, CTX).await,
        StatusCode::UNAUTHORIZED,
        "invalid refresh token",
    );
    // A disabled DID user cannot sign in again.
    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/users/{user}"),
            &admin,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (jwt, id) = challenge(&app, &w.did, CTX).await;
    let body = json!({"authJwt": jwt, "did": w.did, "contextName": CTX, "deviceId": DEVICE,
                      "signature": w.sign(&auth_message(CTX, &w.normalized(), &id))});
    let r = post(&app, "/auth/authenticate", body.clone()).await;
    fail(&r, StatusCode::FORBIDDEN, "disabled");
    // The refusal spent nothing: enabled again, the same answer works.
    let r = app
        .json(
            Method::PUT,
            &format!("/admin/realms/test/users/{user}"),
            &admin,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = post(&app, "/auth/authenticate", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn garbage_collection_under_load(app: TestApp) {
    use tessera_oauth::gc::{collect_garbage, GcConfig};
    let store = app.store.clone();
    let w = EthWallet::new();
    let mut old_sessions = Vec::new();
    let mut old_tokens = Vec::new();
    for i in 0..12 {
        let (refresh, access) = login(&app, &w, CTX, &format!("old-{i}")).await;
        old_sessions.push(claims(&access)["sid"].as_str().expect("sid").to_string());
        old_tokens.push(refresh);
        challenge(&app, &w.did, CTX).await; // left unanswered
    }
    // Let them expire (refresh tokens and challenges live 3 s here).
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    // The collector's "now": everything made from here on is live at it,
    // however slowly the machine makes it (a loaded CI took over 1 s for a
    // login, whose challenge then counted as expired).
    let cutoff = now_ms();
    let (live_refresh, _) = login(&app, &w, CTX, "live").await;
    let app = std::sync::Arc::new(app);
    // Issue tokens while the collector works through small batches.
    let issuing = {
        let app = app.clone();
        let did = w.did.clone();
        let key = w.key.clone();
        tokio::spawn(async move {
            let w = EthWallet { key, did };
            for i in 0..5 {
                login(&app, &w, CTX, &format!("during-{i}")).await;
            }
        })
    };
    let config = GcConfig {
        batch: 4,
        pause: std::time::Duration::from_millis(5),
    };
    let done = collect_garbage(store.as_ref(), cutoff, config)
        .await
        .expect("gc");
    issuing.await.expect("issuance kept working while GC ran");
    assert_eq!(done.sessions, 12, "{done:?}");
    assert_eq!(done.challenges, 12, "{done:?}");
    for sid in &old_sessions {
        assert_eq!(store.session(sid).await.expect("db"), None);
    }
    for t in &old_tokens {
        let hash = tessera_core::TokenHash::of(t);
        assert_eq!(store.refresh_token(&hash).await.expect("db"), None);
    }
    assert_eq!(
        connect(&app, &live_refresh, &w.did, CTX).await.status,
        StatusCode::OK,
        "live rows stay"
    );
    assert_eq!(did_sessions(&app, &w.did).await, 6);
}

macro_rules! consent_tests {
    ($($name:ident => $tune:expr),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = super::consent_app(super::Backend::Sqlite, $tune).await.expect("sqlite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = super::consent_app(super::Backend::Postgres, $tune).await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// A signature is self-service: it never signs in to the admin realm, nor
/// to an account that holds the admin role.
async fn consent_never_reaches_admins(app: TestApp) {
    let w = EthWallet::new();
    let r = post(
        &app,
        "/realms/master/consent/generateAuthJwt",
        json!({"did": w.did, "contextName": CTX}),
    )
    .await;
    fail(&r, StatusCode::FORBIDDEN, "admin realm");
    let (refresh, _) = login(&app, &w, CTX, "laptop").await;
    // An administrator grants this DID's account the admin role: from then
    // on, neither its tokens nor a new signature sign it in.
    let store = &app.store;
    let realm = store
        .realm_by_name("test")
        .await
        .expect("db")
        .expect("realm");
    let mut user = store
        .user_by_username(
            &realm.id,
            &tessera_oauth::consent::did_username(
                &tessera_consent::Did::parse(&w.did).expect("did"),
            ),
        )
        .await
        .expect("db")
        .expect("DID user");
    user.roles.push("admin".into());
    store.update_user(&user).await.expect("update");
    fail(
        &connect(&app, &refresh, &w.did, CTX).await,
        StatusCode::FORBIDDEN,
        "cannot be signed in to this way",
    );
    let (jwt, id) = challenge(&app, &w.did, CTX).await;
    let r = post(
        &app,
        "/auth/authenticate",
        json!({"authJwt": jwt, "did": w.did, "contextName": CTX, "deviceId": "laptop",
               "signature": w.sign(&auth_message(CTX, &w.normalized(), &id))}),
    )
    .await;
    fail(&r, StatusCode::FORBIDDEN, "cannot be signed in to this way");
}

consent_tests! {
    consent_never_reaches_admins => |_| {},
    ethereum_flow_end_to_end => |_| {},
    did_key_wallets_sign_with_ed25519 => |_| {},
    negative_table => |_| {},
    expired_auth_jwt_is_refused => |c| c.consent.challenge_ttl_secs = 1,
    concurrent_answers_to_one_challenge_win_once => |_| {},
    refresh_tokens_are_bound_to_context_and_did => |_| {},
    reusing_a_rotated_token_ends_the_session => |c| c.refresh_reuse_grace_ms = 0,
    invalidating_a_device_ends_all_its_sessions => |_| {},
    app_connections_show_in_the_admin_api => |_| {},
    garbage_collection_under_load => |c| {
        // Challenges live as long as the refresh tokens: a login must
        // answer its challenge within that, even on a loaded machine.
        c.consent.refresh_token_ttl_secs = 3;
        c.consent.challenge_ttl_secs = 3;
    },
}
