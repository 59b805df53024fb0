//! The verification layer against a table of good and hostile tokens, and
//! the JWKS cache's refetch limit.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tessera_core::SigningAlg;
use tessera_keys::{SigningKey, VerifyingKey};
use tessera_verify::{
    Accept, AgentConfig, JwksKeySource, Policy, ProtectedResource, StaticKeys, Subject, Verifier,
    VerifyLayer,
};
use tower::ServiceExt;

const ISS: &str = "http://issuer.test/realms/r";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn pair(alg: SigningAlg) -> (SigningKey, VerifyingKey) {
    let g = tessera_keys::generate(alg).expect("generate");
    (
        SigningKey::from_pkcs8(g.kid.clone(), alg, &g.pkcs8_der).expect("private"),
        VerifyingKey::from_spki(g.kid.clone(), alg, &g.spki_der).expect("public"),
    )
}

fn claims(f: impl FnOnce(&mut Value)) -> Value {
    let mut c = json!({
        "iss": ISS, "sub": "user-1", "aud": "app", "azp": "app", "typ": "Bearer",
        "exp": now() + 300, "iat": now(), "preferred_username": "alice",
        "realm_access": {"roles": ["user"]}, "scope": "email profile", "sid": "s-1",
    });
    f(&mut c);
    c
}

fn unsigned(header: Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

struct Fixture {
    app: Router,
    user_key: SigningKey,
    user_public: VerifyingKey,
    machine_key: SigningKey,
}

fn fixture() -> Fixture {
    let (user_key, user_public) = pair(SigningAlg::RS256);
    let (machine_key, machine_public) = pair(SigningAlg::RS512);
    let vars = HashMap::from([
        (
            "CHE_MACHINE_AUTH_SIGNATURE__ALGORITHM".to_string(),
            "RSA".to_string(),
        ),
        (
            "CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY".to_string(),
            STANDARD.encode(machine_public.spki_der()),
        ),
        ("CHE_WORKSPACE_ID".to_string(), "ws-1".to_string()),
    ]);
    let agent = AgentConfig::from_vars(&vars).expect("agent config");
    let verifier = Arc::new(
        Verifier::new(ISS, Arc::new(StaticKeys::new(vec![user_public.clone()])))
            .audience("app")
            .leeway(5)
            .machine_tokens(Arc::new(MachineViaAgent(agent))),
    );
    let echo = |s: Subject, uri: axum::http::Uri, original: axum::extract::OriginalUri| async move {
        Json(
            json!({"id": s.id, "machine": s.is_machine(), "uri": uri.to_string(), "original": original.0.to_string()}),
        )
    };
    let layer = |p: Policy| VerifyLayer::new(verifier.clone(), p);
    let app = Router::new()
        .route("/both", get(echo))
        .route_layer(layer(Policy {
            accept: Accept::Both,
            ..Policy::default()
        }))
        .merge(
            Router::new()
                .route("/users", get(echo))
                .route_layer(layer(Policy::default())),
        )
        .merge(
            Router::new()
                .route("/machines", get(echo))
                .route_layer(layer(Policy {
                    accept: Accept::Machines,
                    ..Policy::default()
                })),
        )
        .merge(
            Router::new()
                .route("/query", get(echo))
                .route_layer(layer(Policy {
                    query_token: true,
                    accept: Accept::Both,
                    ..Policy::default()
                })),
        )
        .merge(
            Router::new()
                .route("/admin", get(echo))
                .route_layer(layer(Policy {
                    required_role: Some("admin".into()),
                    ..Policy::default()
                })),
        );
    Fixture {
        app,
        user_key,
        user_public,
        machine_key,
    }
}

/// Lets the test drive machine tokens through the agent-mode checks.
struct MachineViaAgent(AgentConfig);

#[async_trait::async_trait]
impl tessera_verify::MachineTokens for MachineViaAgent {
    async fn verify_machine(
        &self,
        token: &str,
        _: &tessera_keys::JwsHeader,
    ) -> Result<Subject, tessera_verify::VerifyError> {
        self.0.verifier().verify(token).await
    }
}

async fn call(app: &Router, uri: &str, auth: Option<&str>) -> (StatusCode, Value, Option<String>) {
    let mut req = Request::builder().uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = res.status();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        www,
    )
}

#[tokio::test]
async fn hostile_tokens_are_refused_and_good_ones_pass() {
    let f = fixture();
    let good = f.user_key.sign_jwt(&claims(|_| {}), None);
    let machine = |wsid: &str| {
        f.machine_key.sign_jwt(
            &json!({"wsid": wsid, "uid": "user-1", "uname": "alice", "jti": "j"}),
            Some("machine_token"),
        )
    };
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(claims(|c| c["sub"] = json!("admin")).to_string());
        parts.join(".")
    };
    let hs256 = {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": f.user_public.kid()});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims(|_| {}).to_string())
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, f.user_public.spki_der());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, input.as_bytes()).as_ref())
        )
    };
    let other_key = pair(SigningAlg::RS256).0;
    let bearer = |t: &str| format!("Bearer {t}");
    let table: Vec<(&str, &str, Option<String>, StatusCode)> = vec![
        (
            "no sub",
            "/users",
            Some(bearer(&f.user_key.sign_jwt(
                &claims(|c| {
                    c.as_object_mut().expect("obj").remove("sub");
                }),
                None,
            ))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "allowed alg that is not the key's",
            "/users",
            Some(bearer(&{
                let c = claims(|_| {});
                let header = json!({"alg": "RS512", "typ": "JWT", "kid": f.user_public.kid()});
                let input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(c.to_string())
                );
                format!(
                    "{input}.{}",
                    URL_SAFE_NO_PAD.encode(f.user_key.sign(input.as_bytes()))
                )
            })),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "oversized but correctly signed",
            "/users",
            Some(bearer(&f.user_key.sign_jwt(
                &claims(|c| c["pad"] = json!("x".repeat(20_000))),
                None,
            ))),
            StatusCode::UNAUTHORIZED,
        ),
        ("valid", "/users", Some(bearer(&good)), StatusCode::OK),
        ("missing", "/users", None, StatusCode::UNAUTHORIZED),
        (
            "expired",
            "/users",
            Some(bearer(
                &f.user_key
                    .sign_jwt(&claims(|c| c["exp"] = json!(now() - 60)), None),
            )),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "not yet valid",
            "/users",
            Some(bearer(
                &f.user_key
                    .sign_jwt(&claims(|c| c["nbf"] = json!(now() + 600)), None),
            )),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong issuer",
            "/users",
            Some(bearer(&f.user_key.sign_jwt(
                &claims(|c| c["iss"] = json!("http://evil.test/realms/r")),
                None,
            ))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong audience",
            "/users",
            Some(bearer(
                &f.user_key
                    .sign_jwt(&claims(|c| c["aud"] = json!("other")), None),
            )),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "audience in a list",
            "/users",
            Some(bearer(
                &f.user_key
                    .sign_jwt(&claims(|c| c["aud"] = json!(["x", "app"])), None),
            )),
            StatusCode::OK,
        ),
        (
            "alg none",
            "/users",
            Some(bearer(&unsigned(
                json!({"alg": "none", "kid": f.user_public.kid()}),
                &claims(|_| {}),
                b"",
            ))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "HS256 with the RSA public key",
            "/users",
            Some(bearer(&hs256)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown kid",
            "/users",
            Some(bearer(&other_key.sign_jwt(&claims(|_| {}), None))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "tampered payload",
            "/users",
            Some(bearer(&tampered)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "opaque refresh token",
            "/users",
            Some(bearer("kZr3x0Q_refresh-token-value_9f8e7d6c5b4a")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "challenge JWT",
            "/users",
            Some(bearer(
                &f.user_key
                    .sign_jwt(&claims(|c| c["typ"] = json!("challenge")), None),
            )),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "ID token",
            "/users",
            Some(bearer(
                &f.user_key
                    .sign_jwt(&claims(|c| c["typ"] = json!("ID")), None),
            )),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no exp",
            "/users",
            Some(bearer(&f.user_key.sign_jwt(
                &claims(|c| {
                    c.as_object_mut().expect("obj").remove("exp");
                }),
                None,
            ))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "not Bearer scheme",
            "/users",
            Some(format!("Basic {good}")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "oversized header",
            "/users",
            Some(bearer(&"a".repeat(20_000))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "machine token, own workspace",
            "/both",
            Some(bearer(&machine("ws-1"))),
            StatusCode::OK,
        ),
        (
            "machine token of another workspace",
            "/both",
            Some(bearer(&machine("ws-2"))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "machine token without kind header",
            "/both",
            Some(bearer(&f.machine_key.sign_jwt(
                &json!({"wsid": "ws-1", "uid": "u", "jti": "j"}),
                None,
            ))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "machine token where only users",
            "/users",
            Some(bearer(&machine("ws-1"))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "user token where only machines",
            "/machines",
            Some(bearer(&good)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "machine token where only machines",
            "/machines",
            Some(bearer(&machine("ws-1"))),
            StatusCode::OK,
        ),
        (
            "missing role",
            "/admin",
            Some(bearer(&good)),
            StatusCode::FORBIDDEN,
        ),
        (
            "role present",
            "/admin",
            Some(bearer(&f.user_key.sign_jwt(
                &claims(|c| c["realm_access"]["roles"] = json!(["admin"])),
                None,
            ))),
            StatusCode::OK,
        ),
    ];
    for (name, path, auth, status) in table {
        let (got, body, www) = call(&f.app, path, auth.as_deref()).await;
        assert_eq!(got, status, "{name}: {body}");
        match got {
            StatusCode::UNAUTHORIZED => {
                let www = www.unwrap_or_default();
                assert!(
                    www.starts_with("Bearer error=\"invalid_token\""),
                    "{name}: {www}"
                );
            }
            StatusCode::FORBIDDEN => assert!(
                www.unwrap_or_default().contains("insufficient_scope"),
                "{name}"
            ),
            _ => assert_eq!(body["id"], "user-1", "{name}: subject in extensions"),
        }
    }
}

#[tokio::test]
async fn query_tokens_only_where_allowed_and_never_passed_on() {
    let f = fixture();
    let good = f.user_key.sign_jwt(&claims(|_| {}), None);
    let (status, _, _) = call(&f.app, &format!("/users?token={good}"), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "query token where not allowed"
    );
    let (status, body, _) = call(&f.app, &format!("/query?a=1&token={good}&b=2"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["uri"], "/query?a=1&b=2",
        "the token is stripped before the handler (and its logs)"
    );
    assert_eq!(body["original"], "/query?a=1&b=2", "OriginalUri too");
    // With a header as well, the query token is still removed.
    let (status, body, _) = call(
        &f.app,
        "/query?token=leaked&x=1",
        Some(&format!("Bearer {good}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["original"], "/query?x=1");
}

#[tokio::test]
async fn jwks_is_fetched_once_and_bogus_kids_cannot_hammer_the_issuer() {
    let (key, public) = pair(SigningAlg::ES256);
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks = json!({"keys": [public.jwk()]});
    let counter = fetches.clone();
    let issuer = Router::new().route(
        "/realms/r/protocol/openid-connect/certs",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, issuer).await });
    let iss = format!("http://{addr}/realms/r");
    let verifier = Verifier::new(
        iss.clone(),
        Arc::new(JwksKeySource::for_keycloak_issuer(&iss).min_refetch(Duration::from_secs(60))),
    );
    let good = key.sign_jwt(&claims(|c| c["iss"] = json!(iss)), None);
    for _ in 0..5 {
        assert_eq!(verifier.verify(&good).await.expect("valid").id, "user-1");
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "fetched once, then cached"
    );
    let (bogus, _) = pair(SigningAlg::ES256);
    for _ in 0..50 {
        assert!(verifier
            .verify(&bogus.sign_jwt(&claims(|c| c["iss"] = json!(iss)), None))
            .await
            .is_err());
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "unknown kids do not refetch within the interval"
    );

    // With no minimum interval an unknown kid does refetch (key rotation works).
    let eager = Verifier::new(
        iss.clone(),
        Arc::new(JwksKeySource::for_keycloak_issuer(&iss).min_refetch(Duration::ZERO)),
    );
    assert!(eager.verify(&good).await.is_ok());
    let before = fetches.load(Ordering::SeqCst);
    assert!(eager
        .verify(&bogus.sign_jwt(&claims(|c| c["iss"] = json!(iss)), None))
        .await
        .is_err());
    assert_eq!(fetches.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn agent_configuration_errors_are_clear() {
    let vars = |alg: &str, key: &str| {
        HashMap::from([
            (
                "CHE_MACHINE_AUTH_SIGNATURE__ALGORITHM".to_string(),
                alg.to_string(),
            ),
            (
                "CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY".to_string(),
                key.to_string(),
            ),
            ("CHE_WORKSPACE_ID".to_string(), "ws".to_string()),
        ])
    };
    let (_, public) = pair(SigningAlg::RS512);
    let good = STANDARD.encode(public.spki_der());
    assert!(AgentConfig::from_vars(&vars("RSA", &good)).is_ok());
    assert!(AgentConfig::from_vars(&vars("EC", &good)).is_err());
    assert!(AgentConfig::from_vars(&vars("RSA", "not-base64!")).is_err());
    let mut missing = vars("RSA", &good);
    missing.remove("CHE_WORKSPACE_ID");
    let err = AgentConfig::from_vars(&missing)
        .err()
        .expect("missing var")
        .to_string();
    assert!(err.contains("CHE_WORKSPACE_ID"), "{err}");
}

#[tokio::test]
async fn outgoing_calls_carry_the_subjects_token() {
    let f = fixture();
    let good = f.user_key.sign_jwt(&claims(|_| {}), None);
    // A downstream service that echoes the Authorization header it received.
    let downstream = Router::new().route(
        "/echo",
        get(|headers: axum::http::HeaderMap| async move {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, downstream).await });
    // A protected route that calls downstream on the caller's behalf.
    let calls = tessera_verify::SignedRequests::default();
    let url = format!("http://{addr}/echo");
    let app = f.app.clone().merge(
        Router::new()
            .route(
                "/forward",
                get(move |s: Subject| {
                    let (calls, url) = (calls.clone(), url.clone());
                    async move {
                        calls
                            .get(&s, &url)
                            .send()
                            .await
                            .expect("downstream")
                            .text()
                            .await
                            .expect("text")
                    }
                }),
            )
            .route_layer(VerifyLayer::new(
                Arc::new(Verifier::new(
                    ISS,
                    Arc::new(StaticKeys::new(vec![f.user_public.clone()])),
                )),
                Policy::default(),
            )),
    );
    let res = app
        .oneshot(
            Request::builder()
                .uri("/forward")
                .header("authorization", format!("Bearer {good}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("infallible");
    let echoed = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(String::from_utf8_lossy(&echoed), format!("Bearer {good}"));
}

#[tokio::test]
async fn issuer_outages_are_rate_limited_and_cached_keys_keep_working() {
    use std::sync::atomic::AtomicBool;
    let (key, public) = pair(SigningAlg::RS256);
    let up = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks = json!({"keys": [public.jwk()]});
    let (up2, counter) = (up.clone(), fetches.clone());
    let issuer = Router::new().route(
        "/realms/r/protocol/openid-connect/certs",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let (jwks, up) = (jwks.clone(), up2.load(Ordering::SeqCst));
            async move {
                if up {
                    Ok(Json(jwks))
                } else {
                    Err(StatusCode::INTERNAL_SERVER_ERROR)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, issuer).await });
    let iss = format!("http://{addr}/realms/r");
    let token = key.sign_jwt(&claims(|c| c["iss"] = json!(iss)), None);

    // Down from the start: an error, and only one attempt per interval.
    let slow = Verifier::new(
        iss.clone(),
        Arc::new(JwksKeySource::for_keycloak_issuer(&iss).min_refetch(Duration::from_secs(60))),
    );
    for _ in 0..10 {
        assert!(matches!(
            slow.verify(&token).await,
            Err(tessera_verify::VerifyError::KeysUnavailable(_))
        ));
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "failed fetches are rate-limited too"
    );

    // Up, then down again after the cache went stale: the known key keeps working.
    up.store(true, Ordering::SeqCst);
    let stale = Verifier::new(
        iss.clone(),
        Arc::new(
            JwksKeySource::for_keycloak_issuer(&iss)
                .min_refetch(Duration::ZERO)
                .max_age(Duration::ZERO),
        ),
    );
    assert!(stale.verify(&token).await.is_ok());
    up.store(false, Ordering::SeqCst);
    let before = fetches.load(Ordering::SeqCst);
    assert!(stale.verify(&token).await.is_ok(), "stale-if-error");
    assert!(
        fetches.load(Ordering::SeqCst) > before,
        "it did try to refresh"
    );
}

/// RFC 9728 and RFC 8707 on the resource side: a layer protecting
/// `https://mcp.test/tools` serves its metadata, takes only tokens whose
/// `aud` names it (from the header only), and tells a token-less client
/// where to look.
#[tokio::test]
async fn a_protected_resource_publishes_its_metadata_and_takes_only_its_tokens() {
    const RESOURCE: &str = "https://mcp.test/tools";
    const METADATA: &str = "https://mcp.test/.well-known/oauth-protected-resource/tools";
    let (key, public) = pair(SigningAlg::ES256);
    let verifier = Arc::new(Verifier::new(ISS, Arc::new(StaticKeys::new(vec![public]))));
    let resource = ProtectedResource::new(RESOURCE, ISS)
        .expect("resource")
        .scopes(["tools:call", "tools:admin"])
        .name("Example tools");
    let echo = |s: Subject| async move { Json(json!({"id": s.id, "aud": s.audience})) };
    let app = Router::new()
        .route("/tools/mcp", get(echo))
        .route_layer(
            VerifyLayer::new(verifier.clone(), Policy::default()).resource(resource.clone()),
        )
        .merge(
            Router::new().route("/tools/admin", get(echo)).route_layer(
                VerifyLayer::new(
                    verifier,
                    Policy {
                        required_scope: Some("tools:admin".into()),
                        ..Policy::default()
                    },
                )
                .resource(resource.clone()),
            ),
        )
        .merge(resource.router());

    // The metadata, at the path-inserted URL (and not at the host's root,
    // where it would describe another resource than the root).
    let (status, _, _) = call(&app, "/.well-known/oauth-protected-resource", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in ["/.well-known/oauth-protected-resource/tools"] {
        let (status, doc, _) = call(&app, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            doc,
            json!({
                "resource": RESOURCE,
                "authorization_servers": [ISS],
                "scopes_supported": ["tools:call", "tools:admin"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Example tools",
            }),
            "{path}"
        );
    }

    // No token: where the metadata is, and no error code (RFC 6750 §3.1).
    let (status, _, www) = call(&app, "/tools/mcp", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www.as_deref(),
        Some(format!("Bearer resource_metadata=\"{METADATA}\"").as_str())
    );

    let token = |aud: Value, scope: &str| {
        key.sign_jwt(
            &claims(|c| {
                c["aud"] = aud;
                c["scope"] = json!(scope);
            }),
            None,
        )
    };
    // Its own tokens pass, alone or among other audiences, in the header.
    for aud in [
        json!(RESOURCE),
        json!(["app", RESOURCE]),
        json!("https://MCP.test:443/tools"),
    ] {
        let (status, body, _) = call(
            &app,
            "/tools/mcp",
            Some(&format!("Bearer {}", token(aud.clone(), ""))),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{aud}: {body}");
    }
    let good = token(json!(RESOURCE), "");
    let (status, _, www) = call(&app, &format!("/tools/mcp?token={good}"), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "no ?token= at a protected resource"
    );
    assert!(www.expect("challenge").contains("resource_metadata="));
    // A token for another resource (or for a client only, or a prefix or an
    // extension of this resource, or none) is refused as invalid, pointing
    // at the metadata.
    for aud in [
        json!("https://other.test/tools"),
        json!("app"),
        json!("https://mcp.test/"),
        json!("https://mcp.test/tools/mcp"),
        json!(["https://mcp.test/tools/", "app"]),
        json!(null),
        json!([1, {"a": RESOURCE}]),
    ] {
        let (status, body, www) = call(
            &app,
            "/tools/mcp",
            Some(&format!("Bearer {}", token(aud.clone(), ""))),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{aud}");
        assert_eq!(body["error"], "invalid_token", "{aud}");
        let www = www.expect("challenge");
        assert!(www.starts_with("Bearer error=\"invalid_token\""), "{www}");
        assert!(
            www.contains(&format!("resource_metadata=\"{METADATA}\"")),
            "{www}"
        );
    }
    // A missing scope: 403 insufficient_scope naming the scope needed.
    let (status, body, www) = call(
        &app,
        "/tools/admin",
        Some(&format!(
            "Bearer {}",
            token(json!(RESOURCE), "tools:call tools:admin:x")
        )),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");
    let www = www.expect("challenge");
    assert!(
        www.starts_with("Bearer error=\"insufficient_scope\"")
            && www.contains("scope=\"tools:admin\"")
            && www.contains(&format!("resource_metadata=\"{METADATA}\"")),
        "{www}"
    );
    let (status, _, _) = call(
        &app,
        "/tools/admin",
        Some(&format!(
            "Bearer {}",
            token(json!(RESOURCE), "tools:call tools:admin")
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
