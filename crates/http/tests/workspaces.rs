//! Che's workspace API and machine tokens through the router, on both
//! backends: shapes, permissions, one token per user per workspace,
//! revocation on stop, and which token kinds each route accepts.

mod common;

use axum::http::{Method, StatusCode};
use common::{claims, header, Backend, Resp, TestApp};
use serde_json::json;

struct Ws {
    app: TestApp,
    alice: String,
    bob: String,
}

impl Ws {
    async fn new(backend: Backend) -> Option<Self> {
        let app = common::app_in_realm(backend, "test").await?;
        let alice = app.alice(None).await.str("access_token");
        let bob = app
            .login_at(&TestApp::token_path("test"), "cli", "bob", "bob-password")
            .await
            .str("access_token");
        Some(Self { app, alice, bob })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Resp {
        self.app.json(method, path, token, body).await
    }

    async fn create(&self, token: &str, name: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/workspace",
                token,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.str("id")
    }

    async fn start(&self, token: &str, id: &str) -> Resp {
        self.call(
            Method::POST,
            &format!("/api/workspace/{id}/runtime"),
            token,
            None,
        )
        .await
    }
}

async fn workspace_lifecycle_in_ches_shapes(backend: Backend) {
    let Some(w) = Ws::new(backend).await else {
        return;
    };
    let r = w
        .call(
            Method::POST,
            "/api/workspace",
            &w.alice,
            Some(json!({"name": "dev"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.body["namespace"], "alice",
        "namespace defaults to the username"
    );
    assert_eq!(r.body["config"]["name"], "dev");
    assert_eq!(r.body["status"], "STOPPED");
    assert!(r.body.get("runtime").is_none());
    let id = r.str("id");
    let dup = w
        .call(
            Method::POST,
            "/api/workspace",
            &w.alice,
            Some(json!({"name": "dev"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let other_ns = w
        .call(
            Method::POST,
            "/api/workspace",
            &w.alice,
            Some(json!({"name": "x", "namespace": "bob"})),
        )
        .await;
    assert_eq!(other_ns.status, StatusCode::FORBIDDEN);
    for bad in [
        json!({}),
        json!({"name": "a b"}),
        json!({"name": "runtime"}),
    ] {
        let r = w
            .call(Method::POST, "/api/workspace", &w.alice, Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body["message"].is_string());
    }

    let started = w.start(&w.alice, &id).await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    assert_eq!(started.body["status"], "RUNNING");
    let token = started.body["runtime"]["machineToken"]
        .as_str()
        .expect("machine token")
        .to_string();
    assert!(started.body["runtime"]["machines"]
        .as_object()
        .is_some_and(|m| !m.is_empty()));
    let h = header(&token);
    assert_eq!(
        (h["alg"].as_str(), h["kind"].as_str(), h["typ"].as_str()),
        (Some("RS512"), Some("machine_token"), Some("JWT"))
    );
    let c = claims(&token);
    assert_eq!(c["wsid"], id.as_str());
    assert_eq!(c["uid"], w.app.user_id("test", "alice").await.as_str());
    assert_eq!(c["uname"], "alice");
    assert!(c["jti"].is_string());

    let by_name = w
        .call(Method::GET, "/api/workspace/alice/dev", &w.alice, None)
        .await;
    assert_eq!(by_name.body["id"], id.as_str());
    assert_eq!(
        by_name.body["runtime"]["machineToken"],
        token.as_str(),
        "the same token each time"
    );
    let listed = w.call(Method::GET, "/api/workspace", &w.alice, None).await;
    assert_eq!(listed.body.as_array().map(|a| a.len()), Some(1));
    let mt = w
        .call(
            Method::GET,
            &format!("/api/machine/token/{id}"),
            &w.alice,
            None,
        )
        .await;
    assert_eq!(mt.body["machineToken"], token.as_str());

    assert_eq!(
        w.call(
            Method::DELETE,
            &format!("/api/workspace/{id}"),
            &w.alice,
            None
        )
        .await
        .status,
        StatusCode::CONFLICT,
        "running"
    );
    assert_eq!(
        w.call(
            Method::DELETE,
            &format!("/api/workspace/{id}/runtime"),
            &w.alice,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let stopped = w
        .call(Method::GET, &format!("/api/workspace/{id}"), &w.alice, None)
        .await;
    assert_eq!(stopped.body["status"], "STOPPED");
    assert!(stopped.body.get("runtime").is_none());
    assert_eq!(
        w.call(
            Method::GET,
            &format!("/api/machine/token/{id}"),
            &w.alice,
            None
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        w.call(
            Method::DELETE,
            &format!("/api/workspace/{id}"),
            &w.alice,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{id}"), &w.alice, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn members_and_one_token_per_user(backend: Backend) {
    let Some(w) = Ws::new(backend).await else {
        return;
    };
    let id = w.create(&w.alice, "shared").await;
    let alice_token = w.start(&w.alice, &id).await.body["runtime"]["machineToken"].clone();
    // Bob cannot see it yet: 404, not 403, so names are not disclosed.
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{id}"), &w.bob, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.call(Method::GET, "/api/workspace/alice/shared", &w.bob, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Only the owner invites.
    let r = w
        .call(
            Method::POST,
            &format!("/api/workspace/{id}/members"),
            &w.alice,
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = w
        .call(
            Method::POST,
            &format!("/api/workspace/{id}/members"),
            &w.bob,
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .call(
            Method::POST,
            &format!("/api/workspace/{id}/members"),
            &w.alice,
            Some(json!({"username": "nobody"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Bob's first request issues his own token; alice's GET shows hers only.
    let bob_view = w
        .call(Method::GET, &format!("/api/workspace/{id}"), &w.bob, None)
        .await;
    let bob_token = bob_view.body["runtime"]["machineToken"].clone();
    assert!(bob_token.is_string());
    assert_ne!(bob_token, alice_token);
    assert_eq!(claims(bob_token.as_str().expect("str"))["uname"], "bob");
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{id}"), &w.alice, None)
            .await
            .body["runtime"]["machineToken"],
        alice_token
    );
    assert_eq!(
        w.call(Method::GET, "/api/workspace", &w.bob, None)
            .await
            .body
            .as_array()
            .map(|a| a.len()),
        Some(1)
    );
    // Listings show the runtime but mint and sign no tokens.
    let listed = w.call(Method::GET, "/api/workspace", &w.bob, None).await;
    assert_eq!(listed.body[0]["status"], "RUNNING");
    assert!(listed.body[0]["runtime"].get("machineToken").is_none());
    // Members may stop, but not delete.
    let stopped = w
        .call(
            Method::DELETE,
            &format!("/api/workspace/{id}/runtime"),
            &w.bob,
            None,
        )
        .await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT);
    let again = w
        .call(
            Method::DELETE,
            &format!("/api/workspace/{id}/runtime"),
            &w.bob,
            None,
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "stopping a stopped workspace"
    );
    assert_eq!(
        w.call(
            Method::DELETE,
            &format!("/api/workspace/{id}"),
            &w.bob,
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.call(
            Method::DELETE,
            &format!("/api/workspace/{id}"),
            &w.alice,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
}

async fn machine_tokens_are_accepted_until_the_workspace_stops(backend: Backend) {
    let Some(w) = Ws::new(backend).await else {
        return;
    };
    let id = w.create(&w.alice, "a").await;
    let other = w.create(&w.alice, "b").await;
    let mt = w
        .start(&w.alice, &id)
        .await
        .str_at(&["runtime", "machineToken"]);
    w.start(&w.alice, &other).await;
    // The master accepts the machine token for its own workspace (header or query)...
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{id}"), &mt, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        w.app
            .get(&format!("/api/workspace/{id}?token={mt}"), None)
            .await
            .status,
        StatusCode::OK
    );
    // Query tokens are for reads only: never for changes.
    let via_query = w
        .app
        .raw(
            Method::DELETE,
            &format!("/api/workspace/{id}/runtime?token={mt}"),
            None,
            None,
            vec![],
        )
        .await;
    assert_eq!(via_query.status, StatusCode::UNAUTHORIZED);
    // ...but not for another workspace, nor where only users make sense.
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{other}"), &mt, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.call(Method::GET, "/api/workspace", &mt, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.call(
            Method::POST,
            "/api/workspace",
            &mt,
            Some(json!({"name": "z"}))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{id}/env"), &mt, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // A machine token is not an access token anywhere else.
    assert_eq!(
        w.app
            .get("/realms/test/protocol/openid-connect/userinfo", Some(&mt))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Stop: the token dies at once; restart: a new token, the old one stays dead.
    assert_eq!(
        w.call(
            Method::DELETE,
            &format!("/api/workspace/{id}/runtime"),
            &w.alice,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let r = w
        .call(Method::GET, &format!("/api/workspace/{id}"), &mt, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("invalid_token"));
    let fresh = w
        .start(&w.alice, &id)
        .await
        .str_at(&["runtime", "machineToken"]);
    assert_ne!(fresh, mt);
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{id}"), &mt, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{id}"), &fresh, None)
            .await
            .status,
        StatusCode::OK
    );
    // A forged machine token (right claims, another key) is refused.
    let forged = {
        let g = tessera_keys::generate(tessera_core::SigningAlg::RS512).expect("key");
        let k = tessera_keys::SigningKey::from_pkcs8(
            header(&fresh)["kid"].as_str().expect("kid").into(),
            tessera_core::SigningAlg::RS512,
            &g.pkcs8_der,
        )
        .expect("key");
        k.sign_jwt(&claims(&fresh), Some("machine_token"))
    };
    assert_eq!(
        w.call(Method::GET, &format!("/api/workspace/{id}"), &forged, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn user_tokens_need_a_live_session(backend: Backend) {
    let Some(w) = Ws::new(backend).await else {
        return;
    };
    assert_eq!(
        w.call(Method::GET, "/api/workspace", &w.alice, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        w.app.get("/api/workspace", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A token of another realm is refused (issuer mismatch).
    let admin = w.app.admin_token().await;
    assert_eq!(
        w.call(Method::GET, "/api/workspace", &admin, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // After logout the still-unexpired access token no longer works.
    let t = w.app.alice(None).await;
    w.app
        .form(
            "/realms/test/protocol/openid-connect/logout",
            &[
                ("client_id", "app"),
                ("client_secret", common::APP_SECRET),
                ("refresh_token", &t.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(
        w.call(Method::GET, "/api/workspace", &t.str("access_token"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

trait At {
    fn str_at(&self, path: &[&str]) -> String;
}

impl At for Resp {
    fn str_at(&self, path: &[&str]) -> String {
        let mut v = &self.body;
        for p in path {
            v = &v[*p];
        }
        v.as_str()
            .unwrap_or_else(|| panic!("no {path:?} in {}", self.body))
            .to_string()
    }
}

macro_rules! both {
    ($($name:ident),*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name(super::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name(super::Backend::Postgres).await }
        }
    )*};
}

both!(
    workspace_lifecycle_in_ches_shapes,
    members_and_one_token_per_user,
    machine_tokens_are_accepted_until_the_workspace_stops,
    user_tokens_need_a_live_session
);
