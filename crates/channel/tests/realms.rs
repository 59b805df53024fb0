//! The event channel for every realm: a server with two realms (`red` and
//! `blue`, each with a user `alice`), served on a port, driven by a minimal
//! Socket.IO client over a WebSocket (Engine.IO v4, as npm `socket.io-client`
//! speaks it). Realms, clients and users are made through the Admin REST API,
//! tokens come from the token endpoint.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_channel::{attach, ChannelConfig, Fanout};
use tessera_http::{AppState, HttpSettings, Metrics};
use tessera_keys::MasterKey;
use tessera_oauth::config::PasswordConfig;
use tessera_oauth::{OAuthConfig, Services};
use tessera_store::Store;
use tokio_tungstenite::tungstenite::Message;

const PUBLIC_URL: &str = "http://tessera.test";
const ADMIN_PASSWORD: &str = "admin-password";
const PASSWORD: &str = "alice-password";

/// One node: the HTTP API and the channel on a local port.
struct Node {
    addr: SocketAddr,
    services: Services,
    http: reqwest::Client,
}

/// A database for the nodes of one test, and what keeps it alive.
struct Database {
    store: Arc<dyn Store>,
    master: MasterKey,
    /// The PostgreSQL URL the nodes share events through, if any.
    postgres: Option<String>,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

async fn sqlite() -> Database {
    let dir = tempfile::tempdir().expect("tmp");
    let store = tessera_store_sqlite::SqliteStore::open(&dir.path().join("t.db"))
        .await
        .expect("sqlite");
    Database {
        store: Arc::new(store),
        master: MasterKey::generate(),
        postgres: None,
        _guard: Box::new(dir),
    }
}

/// `None` (skip) without `TESSERA_TEST_POSTGRES_URL`.
async fn postgres() -> Option<Database> {
    let db = tessera_store_postgres::TestDatabase::create().await?;
    let store = tessera_store_postgres::PgStore::connect(&db.url)
        .await
        .expect("postgres");
    Some(Database {
        store: Arc::new(store),
        master: MasterKey::generate(),
        postgres: Some(db.url.clone()),
        _guard: Box::new(db),
    })
}

impl Database {
    /// A node on this database (the first one bootstraps `master`).
    async fn node(&self) -> Node {
        let mut config = OAuthConfig::new(PUBLIC_URL);
        config.password = PasswordConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 4,
        };
        let services = Services::new(self.store.clone(), self.master.clone(), config);
        services
            .admin
            .bootstrap(Some(ADMIN_PASSWORD.into()), "master")
            .await
            .expect("bootstrap");
        let connect = tessera_connect::ConnectService::new(
            services.providers.clone(),
            tessera_connect::ConnectConfig {
                runtime_environment: "test".into(),
                ..Default::default()
            },
            &|_| None,
        )
        .expect("connect config");
        let state = AppState {
            connect: Arc::new(connect),
            services: services.clone(),
            metrics: Arc::new(Metrics::new()),
            settings: Arc::new(HttpSettings::default()),
        };
        let fanout = match &self.postgres {
            Some(url) => Fanout::Postgres(url.clone()),
            None => Fanout::Local,
        };
        let app = attach(
            tessera_http::app(state.clone()),
            &state,
            ChannelConfig::default(),
            fanout,
        )
        .await
        .expect("channel");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .ok();
        });
        Node {
            addr,
            services,
            http: reqwest::Client::new(),
        }
    }
}

impl Node {
    async fn token(&self, realm: &str, client: &str, user: &str, password: &str) -> String {
        let r: Value = self
            .http
            .post(format!(
                "http://{}/realms/{realm}/protocol/openid-connect/token",
                self.addr
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", client),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token JSON");
        r["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {user}@{realm}: {r}"))
            .to_string()
    }

    /// An Admin REST API call as master's admin; panics unless it succeeds.
    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) {
        let admin = self
            .token("master", "admin-cli", "admin", ADMIN_PASSWORD)
            .await;
        let r = self
            .http
            .request(method, format!("http://{}/admin{path}", self.addr))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .expect("admin request");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// Realm `name` with public client `cli` and user `alice`.
    async fn realm(&self, name: &str) {
        use reqwest::Method;
        self.admin(
            Method::POST,
            "/realms",
            json!({"realm": name, "enabled": true}),
        )
        .await;
        self.admin(
            Method::POST,
            &format!("/realms/{name}/clients"),
            json!({"clientId": "cli", "publicClient": true, "directAccessGrantsEnabled": true}),
        )
        .await;
        self.admin(
            Method::POST,
            &format!("/realms/{name}/users"),
            json!({"username": "alice", "enabled": true,
                "credentials": [{"type": "password", "value": PASSWORD, "temporary": false}]}),
        )
        .await;
    }

    async fn alice(&self, realm: &str) -> String {
        self.token(realm, "cli", "alice", PASSWORD).await
    }

    async fn realm_id(&self, name: &str) -> String {
        self.services.realms.realm(name).await.expect("realm").id
    }

    async fn connect(&self, token: &str) -> Result<Sock, String> {
        Sock::connect(self.addr, token).await
    }
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// A Socket.IO client on one WebSocket.
struct Sock {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

const WAIT: Duration = Duration::from_secs(5);

impl Sock {
    /// Connects with `auth: {token}`; `Err` with the `connect_error` message.
    async fn connect(addr: SocketAddr, token: &str) -> Result<Self, String> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket");
        let mut sock = Self { ws };
        let open = sock.frame().await.expect("Engine.IO open");
        assert!(open.starts_with('0'), "{open}");
        sock.send(format!("40{}", json!({ "token": token }))).await;
        let answer = sock.packet().await.expect("CONNECT answer");
        if let Some(error) = answer.strip_prefix('4') {
            let error: Value = serde_json::from_str(error).expect("connect_error");
            return Err(error["message"].as_str().unwrap_or_default().to_string());
        }
        assert!(answer.starts_with('0'), "{answer}");
        let (name, data) = sock.event().await.expect("authenticated");
        assert_eq!((name.as_str(), data), ("authenticated", json!(true)));
        Ok(sock)
    }

    async fn send(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text frame, answering Engine.IO pings on the way; `None`
    /// when the socket closes or nothing comes within `WAIT`.
    async fn frame(&mut self) -> Option<String> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next()).await.ok()??;
            match message.ok()? {
                Message::Text(t) if t.as_str() == "2" => self.send("3".into()).await,
                Message::Text(t) => return Some(t.as_str().to_string()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next Socket.IO packet (an Engine.IO message, `4...`).
    async fn packet(&mut self) -> Option<String> {
        loop {
            let frame = self.frame().await?;
            if let Some(packet) = frame.strip_prefix('4') {
                return Some(packet.to_string());
            }
        }
    }

    /// The next event (`2["name", data]`); `None` if the socket is cut
    /// (DISCONNECT, or closed) or hears nothing.
    async fn event(&mut self) -> Option<(String, Value)> {
        let packet = self.packet().await?;
        let body = packet.strip_prefix('2')?;
        let mut array: Vec<Value> = serde_json::from_str(body).expect("event JSON");
        let data = if array.len() > 1 {
            array.remove(1)
        } else {
            Value::Null
        };
        Some((array[0].as_str().expect("name").to_string(), data))
    }

    /// Who the server says this socket is (the example `ping` handler).
    async fn whoami(&mut self) -> Value {
        self.send(r#"42["ping",{}]"#.into()).await;
        let (name, data) = self.event().await.expect("pong");
        assert_eq!(name, "pong");
        data["subject"].clone()
    }

    /// The next event, skipping none; or `None` within `WAIT`.
    async fn heard(&mut self) -> Option<(String, Value)> {
        self.event().await
    }
}

/// Tokens of two realms connect to one server, and each socket is its own
/// realm's user (both are called alice).
#[tokio::test]
async fn tokens_of_two_realms_connect_to_one_server() {
    let db = sqlite().await;
    let node = db.node().await;
    node.realm("red").await;
    node.realm("blue").await;
    let mut red = node.connect(&node.alice("red").await).await.expect("red");
    let mut blue = node.connect(&node.alice("blue").await).await.expect("blue");
    let (r, b) = (red.whoami().await, blue.whoami().await);
    assert_eq!(
        (r["realm"].as_str(), r["username"].as_str()),
        (Some("red"), Some("alice"))
    );
    assert_eq!(
        (b["realm"].as_str(), b["username"].as_str()),
        (Some("blue"), Some("alice"))
    );
    assert_ne!(r["id"], b["id"]);
    // The master realm is a realm of this server too.
    let admin = node
        .token("master", "admin-cli", "admin", ADMIN_PASSWORD)
        .await;
    let mut m = node.connect(&admin).await.expect("master");
    assert_eq!(m.whoami().await["realm"], "master");
}

/// A message to realm red's alice reaches red's socket only; one addressed
/// to her id in realm blue (as if ids collided) reaches no socket of red.
/// Revocations are per realm the same way.
async fn me_channels_are_per_realm(db: Database, nodes: usize) {
    let first = db.node().await;
    let second = if nodes > 1 {
        db.node().await
    } else {
        first_again(&first)
    };
    first.realm("red").await;
    first.realm("blue").await;
    let red_token = first.alice("red").await;
    let blue_token = first.alice("blue").await;
    // The sockets are on the second node; events are published on the first.
    let mut red = second.connect(&red_token).await.expect("red");
    let mut blue = second.connect(&blue_token).await.expect("blue");
    let red_alice = red.whoami().await["id"].as_str().expect("id").to_string();
    let blue_alice = blue.whoami().await["id"].as_str().expect("id").to_string();
    let (red_id, blue_id) = (first.realm_id("red").await, first.realm_id("blue").await);
    let sessions = &first.services.sessions;

    sessions.publish_to_user(&blue_id, &red_alice, "note", json!({"n": 1}));
    sessions.publish_to_user(&red_id, &red_alice, "note", json!({"n": 2}));
    assert_eq!(red.heard().await, Some(("note".into(), json!({"n": 2}))));
    sessions.publish_to_user(&blue_id, &blue_alice, "note", json!({"n": 3}));
    assert_eq!(blue.heard().await, Some(("note".into(), json!({"n": 3}))));
    // Red heard nothing of blue's: its next event is its own.
    sessions.publish_to_user(&red_id, &red_alice, "note", json!({"n": 4}));
    assert_eq!(red.heard().await, Some(("note".into(), json!({"n": 4}))));

    // Red's session ended under blue's realm id: nothing happens to red.
    let red_sid = claims(&red_token)["sid"].as_str().expect("sid").to_string();
    sessions.announce_ended(&blue_id, &red_alice, vec![red_sid.clone()]);
    assert_eq!(red.whoami().await["realm"], "red", "still connected");
    // Blue's alice signs out for real: blue's socket is cut, red's stays.
    let blue_sid = claims(&blue_token)["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let blue_realm = first.services.realms.realm("blue").await.expect("blue");
    first
        .services
        .admin
        .end_session(&blue_realm, &blue_sid)
        .await
        .expect("end");
    // (It may hear its user's `session_revoked` notice first.)
    let mut cut = blue.heard().await;
    if cut
        .as_ref()
        .is_some_and(|(name, _)| name == "session_revoked")
    {
        cut = blue.heard().await;
    }
    assert_eq!(
        cut,
        Some(("unauthorized".into(), json!({"message": "session revoked"})))
    );
    assert_eq!(blue.heard().await, None, "cut");
    assert_eq!(red.whoami().await["realm"], "red", "red stays");
    sessions.publish_to_user(&red_id, &red_alice, "note", json!({"n": 5}));
    assert_eq!(red.heard().await, Some(("note".into(), json!({"n": 5}))));
}

/// The same node twice (a test of one node).
fn first_again(node: &Node) -> Node {
    Node {
        addr: node.addr,
        services: node.services.clone(),
        http: node.http.clone(),
    }
}

#[tokio::test]
async fn me_channels_and_revocations_are_per_realm() {
    me_channels_are_per_realm(sqlite().await, 1).await;
}

/// Across nodes (PostgreSQL LISTEN/NOTIFY): the realm travels with each
/// message, in its room's name.
#[tokio::test]
async fn me_channels_and_revocations_are_per_realm_across_nodes() {
    let Some(db) = postgres().await else { return };
    me_channels_are_per_realm(db, 2).await;
}

/// A disabled realm's tokens, and tokens naming an unknown realm or signed
/// by another realm than their issuer, are refused.
#[tokio::test]
async fn tokens_of_disabled_unknown_or_other_realms_are_refused() {
    let db = sqlite().await;
    let node = db.node().await;
    node.realm("red").await;
    node.realm("blue").await;
    let red = node.alice("red").await;
    let blue = node.alice("blue").await;

    // Signed with red's key, claiming another issuer.
    let red_realm = node.services.realms.realm("red").await.expect("red");
    let keys = node
        .services
        .verifier
        .realm_keys(&red_realm)
        .await
        .expect("keys");
    let resign = |iss: &str| {
        let mut c = claims(&red);
        c["iss"] = json!(iss);
        keys.signer.sign_jwt(&c, None)
    };
    // The re-signing itself is sound: red's issuer still passes.
    node.connect(&resign(&format!("{PUBLIC_URL}/realms/red")))
        .await
        .expect("red re-signed");
    let refused = [
        ("claims blue", resign(&format!("{PUBLIC_URL}/realms/blue"))),
        (
            "unknown realm",
            resign(&format!("{PUBLIC_URL}/realms/nowhere")),
        ),
        (
            "legacy form",
            resign(&format!("{PUBLIC_URL}/auth/realms/red")),
        ),
        ("another server", resign("http://elsewhere.test/realms/red")),
        ("no issuer", {
            let mut c = claims(&red);
            c.as_object_mut().expect("object").remove("iss");
            keys.signer.sign_jwt(&c, None)
        }),
    ];
    for (case, token) in refused {
        assert_eq!(
            node.connect(&token).await.err().as_deref(),
            Some("unauthorized"),
            "{case}"
        );
    }

    // Blue is disabled: its connected socket is cut, its token is refused
    // from then on, red's still passes.
    let mut blue_socket = node.connect(&blue).await.expect("blue before");
    node.admin(
        reqwest::Method::PUT,
        "/realms/blue",
        json!({"enabled": false}),
    )
    .await;
    // It may hear its session's `session_revoked` on its me-channel first.
    let mut heard = Vec::new();
    while let Some((name, data)) = blue_socket.heard().await {
        heard.push(name.clone());
        assert!(heard.len() < 5, "not cut: {heard:?} {data}");
    }
    assert!(heard.contains(&"unauthorized".to_string()), "{heard:?}");
    assert_eq!(
        node.connect(&blue).await.err().as_deref(),
        Some("unauthorized")
    );
    node.connect(&red).await.expect("red still");
    // Disabling ended blue's sessions: enabled again, the old token stays
    // refused (`revoked`, not counted below), a new sign-in works.
    node.admin(
        reqwest::Method::PUT,
        "/realms/blue",
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(
        node.connect(&blue).await.err().as_deref(),
        Some("unauthorized")
    );
    node.connect(&node.alice("blue").await)
        .await
        .expect("a new blue sign-in");
    let metrics = node
        .http
        .get(format!("http://{}/metrics", node.addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // Counted as `invalid`; the realm is no label (realms are unbounded).
    let invalid = metrics
        .lines()
        .find(|l| l.starts_with("tessera_sockets_rejected_total{reason=\"invalid\"}"))
        .unwrap_or_else(|| panic!("no invalid count in {metrics}"));
    assert_eq!(invalid.split(' ').next_back(), Some("6"), "{invalid}");
}
