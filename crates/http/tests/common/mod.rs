//! Test harness: a full application over a fresh database (SQLite file or a
//! throw-away PostgreSQL database), driven through the router with `oneshot`.
//! Each test gets its own app; nothing is shared.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use tessera_connect::{ConnectConfig, ConnectService};
use tessera_http::{AppState, HttpSettings, Metrics};
use tessera_keys::MasterKey;
use tessera_oauth::config::PasswordConfig;
use tessera_oauth::{OAuthConfig, Services};
use tessera_store::Store;

pub const PUBLIC_URL: &str = "http://tessera.test";
pub const ADMIN_PASSWORD: &str = "admin-password";
pub const APP_SECRET: &str = "app-secret-0123456789abcdef";
pub const ALICE_PASSWORD: &str = "alice-password";

#[derive(Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    /// The database under the services, for tests to set up and inspect
    /// data directly (the crate itself never sees it).
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
    config: OAuthConfig,
    _guard: Box<dyn Any + Send + Sync>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string field {field} in {}", self.body))
            .to_string()
    }
}

/// Claims of a JWT, without verification (tests check verification elsewhere).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

pub fn header(jwt: &str) -> Value {
    let h = jwt.split('.').next().expect("JWT header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("base64url")).expect("JSON")
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Builds an app; `tune` adjusts the token-service config (grace window...).
pub async fn app_with(backend: Backend, tune: impl FnOnce(&mut OAuthConfig)) -> Option<TestApp> {
    build(backend, tune, "master").await
}

/// An app whose realm-less APIs (workspaces, Che settings) act in `realm`.
pub async fn app_in_realm(backend: Backend, realm: &str) -> Option<TestApp> {
    build(backend, |_| {}, realm).await
}

/// Both: a default realm and a tuned config.
pub async fn app_in_realm_with(
    backend: Backend,
    realm: &str,
    tune: impl FnOnce(&mut OAuthConfig),
) -> Option<TestApp> {
    build(backend, tune, realm).await
}

async fn build(
    backend: Backend,
    tune: impl FnOnce(&mut OAuthConfig),
    default_realm: &str,
) -> Option<TestApp> {
    let connect = ConnectConfig {
        runtime_environment: "test".into(),
        relay_max_bytes: 1024 * 1024,
        ..ConnectConfig::default()
    };
    build_with(backend, tune, default_realm, connect, &|_| None).await
}

/// An app with upstream providers and environments; `secrets` plays the
/// process environment for `client_secret_env`.
pub async fn app_with_connect(
    backend: Backend,
    connect: ConnectConfig,
    secrets: &dyn Fn(&str) -> Option<String>,
) -> Option<TestApp> {
    build_with(backend, |_| {}, "test", connect, secrets).await
}

async fn build_with(
    backend: Backend,
    tune: impl FnOnce(&mut OAuthConfig),
    default_realm: &str,
    mut connect: ConnectConfig,
    secrets: &dyn Fn(&str) -> Option<String>,
) -> Option<TestApp> {
    let (store, guard): (Arc<dyn Store>, Box<dyn Any + Send + Sync>) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tmp");
            let store = tessera_store_sqlite::SqliteStore::open(&dir.path().join("t.db"))
                .await
                .expect("sqlite");
            (Arc::new(store), Box::new(dir))
        }
        Backend::Postgres => {
            let db = tessera_store_postgres::TestDatabase::create().await?;
            let store = tessera_store_postgres::PgStore::connect(&db.url)
                .await
                .expect("postgres");
            (Arc::new(store), Box::new(db))
        }
    };
    let mut config = OAuthConfig::new(PUBLIC_URL);
    // Cheap hashes keep the suite fast; cost parameters are tested separately.
    config.password = PasswordConfig {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 4,
    };
    tune(&mut config);
    let master = MasterKey::generate();
    let services = Services::new(store.clone(), master.clone(), config.clone());
    services
        .admin
        .bootstrap(Some(ADMIN_PASSWORD.into()), "master")
        .await
        .expect("bootstrap");
    connect.default_realm = default_realm.to_string();
    let connect =
        ConnectService::new(services.providers.clone(), connect, secrets).expect("connect config");
    let state = AppState {
        connect: Arc::new(connect),
        services,
        metrics: Arc::new(Metrics::new()),
        settings: Arc::new(HttpSettings {
            max_body_bytes: 8 * 1024,
            default_realm: default_realm.to_string(),
            ..HttpSettings::default()
        }),
    };
    let app = TestApp {
        router: tessera_http::app(state.clone()),
        state,
        store,
        master,
        config,
        _guard: guard,
    };
    app.seed().await;
    Some(app)
}

pub async fn app(backend: Backend) -> Option<TestApp> {
    app_with(backend, |_| {}).await
}

impl TestApp {
    pub async fn send(&self, req: Request<Body>) -> Resp {
        self.send_from(SocketAddr::from(([192, 0, 2, 7], 40000)), req)
            .await
    }

    /// A request from the peer `from` (another client, or a load balancer).
    pub async fn send_from(&self, from: SocketAddr, mut req: Request<Body>) -> Resp {
        use tower::ServiceExt;
        req.extensions_mut().insert(ConnectInfo(from));
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("infallible router");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        auth: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("user-agent", "tessera-tests/1.0");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        self.send(req.body(Body::from(body)).expect("request"))
            .await
    }

    pub async fn form(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        self.form_auth(path, pairs, None).await
    }

    pub async fn form_auth(&self, path: &str, pairs: &[(&str, &str)], auth: Option<&str>) -> Resp {
        let body = serde_urlencoded::to_string(pairs).expect("form");
        self.raw(
            Method::POST,
            path,
            Some("application/x-www-form-urlencoded"),
            auth,
            body.into_bytes(),
        )
        .await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Resp {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        self.raw(Method::GET, path, None, auth.as_deref(), vec![])
            .await
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Resp {
        let auth = format!("Bearer {bearer}");
        match body {
            Some(b) => {
                self.raw(
                    method,
                    path,
                    Some("application/json"),
                    Some(&auth),
                    serde_json::to_vec(&b).expect("json"),
                )
                .await
            }
            None => self.raw(method, path, None, Some(&auth), vec![]).await,
        }
    }

    pub fn token_path(realm: &str) -> String {
        format!("/realms/{realm}/protocol/openid-connect/token")
    }

    /// Password grant for alice at the confidential `app` client of realm `test`.
    pub async fn alice(&self, scope: Option<&str>) -> Resp {
        let mut pairs = vec![
            ("grant_type", "password"),
            ("client_id", "app"),
            ("client_secret", APP_SECRET),
            ("username", "alice"),
            ("password", ALICE_PASSWORD),
            ("device_id", "laptop-1"),
        ];
        if let Some(s) = scope {
            pairs.push(("scope", s));
        }
        self.form(&Self::token_path("test"), &pairs).await
    }

    /// Password grant at `token_path` for a public client (or admin-cli).
    pub async fn login_at(
        &self,
        token_path: &str,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Resp {
        self.form(
            token_path,
            &[
                ("grant_type", "password"),
                ("client_id", client_id),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        self.form(
            &Self::token_path("test"),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "app"),
                ("client_secret", APP_SECRET),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    pub async fn admin_token(&self) -> String {
        let r = self
            .form(
                &Self::token_path("master"),
                &[
                    ("grant_type", "password"),
                    ("client_id", "admin-cli"),
                    ("username", "admin"),
                    ("password", ADMIN_PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "admin login: {:?}", r.body);
        r.str("access_token")
    }

    /// Realm `test` with confidential client `app` (password + service
    /// accounts), public client `cli` and users alice and bob, all made
    /// through the Admin API.
    async fn seed(&self) {
        let admin = self.admin_token().await;
        let ok = |r: Resp| {
            assert!(
                r.status.is_success(),
                "seed step failed: {} {:?}",
                r.status,
                r.body
            )
        };
        ok(self
            .json(
                Method::POST,
                "/admin/realms",
                &admin,
                Some(json!({"realm": "test", "enabled": true})),
            )
            .await);
        ok(self
            .json(
                Method::POST,
                "/admin/realms/test/clients",
                &admin,
                Some(
                    json!({"clientId": "app", "secret": APP_SECRET, "publicClient": false,
                    "directAccessGrantsEnabled": true, "serviceAccountsEnabled": true,
                    "redirectUris": ["http://127.0.0.1:9999/cb"]}),
                ),
            )
            .await);
        ok(self
            .json(Method::POST, "/admin/realms/test/clients", &admin,
                Some(json!({"clientId": "cli", "publicClient": true, "directAccessGrantsEnabled": true})))
            .await);
        for (name, pw) in [("alice", ALICE_PASSWORD), ("bob", "bob-password")] {
            ok(self
                .json(Method::POST, "/admin/realms/test/users", &admin,
                    Some(json!({"username": name, "email": format!("{name}@example.test"), "firstName": "First",
                        "lastName": name, "enabled": true,
                        "credentials": [{"type": "password", "value": pw, "temporary": false}]})))
                .await);
        }
    }

    pub async fn user_id(&self, realm: &str, username: &str) -> String {
        let realm = self
            .store
            .realm_by_name(realm)
            .await
            .expect("db")
            .expect("realm");
        self.store
            .user_by_username(&realm.id, username)
            .await
            .expect("db")
            .expect("user")
            .id
    }

    /// Another node of the same deployment: its own process state (caches,
    /// anything kept in memory), the same database and master key. Keep
    /// `self` alive while it is used (it owns the database).
    pub fn second_node(&self) -> TestApp {
        let services = Services::new(self.store.clone(), self.master.clone(), self.config.clone());
        let connect = ConnectService::new(
            services.providers.clone(),
            (*self.state.connect.config).clone(),
            &|_| None,
        )
        .expect("connect config");
        let state = AppState {
            connect: Arc::new(connect),
            services,
            metrics: Arc::new(Metrics::new()),
            settings: self.state.settings.clone(),
        };
        TestApp {
            router: tessera_http::app(state.clone()),
            state,
            store: self.store.clone(),
            master: self.master.clone(),
            config: self.config.clone(),
            _guard: Box::new(()),
        }
    }

    /// The same deployment behind another router (other HTTP settings).
    pub fn with_router(router: Router, like: &TestApp) -> TestApp {
        TestApp {
            router,
            state: like.state.clone(),
            store: like.store.clone(),
            master: like.master.clone(),
            config: like.config.clone(),
            _guard: Box::new(()),
        }
    }

    /// The internal id of a client (what Admin API paths take).
    pub async fn client_uuid(&self, realm: &str, client_id: &str) -> String {
        let store = &self.store;
        let realm = store
            .realm_by_name(realm)
            .await
            .expect("db")
            .expect("realm");
        store
            .client_by_client_id(&realm.id, client_id)
            .await
            .expect("db")
            .expect("client")
            .id
    }

    pub async fn active_sessions(&self, username: &str) -> usize {
        let realm = self
            .store
            .realm_by_name("test")
            .await
            .expect("db")
            .expect("realm");
        let id = self.user_id("test", username).await;
        self.store
            .user_sessions(&realm.id, &id, tessera_core::time::now_ms())
            .await
            .expect("db")
            .len()
    }
}

/// One `#[tokio::test]` per backend for each listed test function
/// `async fn name(app: TestApp)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::app($crate::common::Backend::Sqlite).await.expect("sqlite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::common::app($crate::common::Backend::Postgres).await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
}
