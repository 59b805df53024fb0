//! The `tessera` binary end to end: zero-configuration start, the one-time
//! admin password, `tessera admin` over HTTP and directly on the data
//! directory, key rotation while stopped, graceful shutdown, a wrong master
//! key, the config file, and PostgreSQL by URL.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::*;

async fn client_credentials(url: &str, realm: &str, id: &str, secret: &str) -> Value {
    reqwest::Client::new()
        .post(format!(
            "{url}/realms/{realm}/protocol/openid-connect/token"
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json")
}

fn kid(jwt: &str) -> String {
    use base64::Engine;
    let h = jwt.split('.').next().expect("header");
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .expect("b64"),
    )
    .expect("json");
    v["kid"].as_str().expect("kid").to_string()
}

#[tokio::test]
async fn first_start_admin_cli_and_offline_key_rotation() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let data_s = data.to_str().expect("utf8");

    // Before the first start there is nothing to administer: one clear line, non-zero exit.
    let out = tessera(
        &["admin", "realms", "list", "--data-dir", data_s],
        &[],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: no Tessera database at"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);

    // Zero configuration: the one-time admin password is printed once.
    let public = ["--public-url", "http://id.example.test"];
    let mut server = Server::start(&data, &[], &public);
    server.wait_ready().await;
    std::thread::sleep(Duration::from_millis(200));
    let printed = server.printed();
    let password = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("One-time admin password: "))
        .expect("password printed")
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("master.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "master key file is private");
        let db = std::fs::metadata(data.join("tessera.db"))
            .expect("db file")
            .permissions()
            .mode();
        assert_eq!(db & 0o777, 0o600, "database file is private");
    }

    // Remote administration with that password.
    let remote = [("TESSERA_ADMIN_PASSWORD", password.as_str())];
    let url = server.url.clone();
    ok(&tessera(
        &[
            "admin", "--server", &url, "realms", "create", "demo", "--alg", "ES256",
        ],
        &remote,
        None,
    ));
    let client: Value = serde_json::from_str(&ok(&tessera(
        &[
            "admin",
            "--server",
            &url,
            "clients",
            "create",
            "--realm",
            "demo",
            "--client-id",
            "svc",
            "--service-accounts",
        ],
        &remote,
        None,
    )))
    .expect("client JSON");
    let secret = client["secret"]
        .as_str()
        .expect("generated secret")
        .to_string();
    let printed_secret = ok(&tessera(
        &[
            "admin",
            "--server",
            &url,
            "clients",
            "secret",
            "--realm",
            "demo",
            "--client-id",
            "svc",
        ],
        &remote,
        None,
    ));
    assert_eq!(printed_secret.trim(), secret);
    // The user commands' --username names the user acted on; the admin who
    // signs in is --admin-user (it was one global flag, and the remote
    // sign-in used the new user's name).
    ok(&tessera(
        &[
            "admin",
            "--server",
            &url,
            "users",
            "create",
            "--realm",
            "demo",
            "--username",
            "carol",
        ],
        &remote,
        None,
    ));
    let listed = ok(&tessera(
        &[
            "admin",
            "--admin-user",
            "admin",
            "--server",
            &url,
            "sessions",
            "list",
            "--realm",
            "demo",
            "--username",
            "carol",
        ],
        &remote,
        None,
    ));
    let sessions: Value = serde_json::from_str(&listed).expect("sessions JSON");
    assert_eq!(sessions, serde_json::json!([]), "carol has no sessions yet");
    let t1 = client_credentials(&url, "demo", "svc", &secret).await;
    let old_token = t1["access_token"].as_str().expect("token").to_string();
    let old_kid = kid(&old_token);
    // A wrong admin password is a one-line error.
    let bad = tessera(
        &["admin", "--server", &url, "realms", "list"],
        &[("TESSERA_ADMIN_PASSWORD", "wrong")],
        None,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("admin login failed"));

    server.stop();

    // Stopped: administer the data directory directly.
    let local = ["--data-dir", data_s];
    let realms = ok(&tessera(
        &["admin", "realms", "list", local[0], local[1]],
        &[],
        None,
    ));
    assert!(realms.contains("\"demo\""));
    let rotated = ok(&tessera(
        &[
            "admin", "keys", "rotate", "--realm", "demo", local[0], local[1],
        ],
        &[],
        None,
    ));
    assert!(
        !rotated.contains(&old_kid),
        "a new key is active: {rotated}"
    );
    ok(&tessera(
        &[
            "admin",
            "users",
            "create",
            "--realm",
            "demo",
            "--username",
            "dana",
            "--password-stdin",
            local[0],
            local[1],
        ],
        &[],
        Some("dana-pw\n"),
    ));

    // Restarted: the new key signs, the old token still verifies.
    let mut server = Server::start(&data, &[], &public);
    server.wait_ready().await;
    assert!(
        server
            .printed()
            .iter()
            .all(|l| !l.contains("One-time admin password")),
        "printed only on first start"
    );
    let t2 = client_credentials(&server.url, "demo", "svc", &secret).await;
    let new_token = t2["access_token"].as_str().expect("token");
    assert_ne!(kid(new_token), old_kid);
    let jwks: Value = reqwest::get(format!(
        "{}/realms/demo/protocol/openid-connect/certs",
        server.url
    ))
    .await
    .expect("jwks")
    .json()
    .await
    .expect("json");
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&kid(new_token)),
        "{kids:?}"
    );
    let introspected: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/token/introspect",
            server.url
        ))
        .form(&[
            ("client_id", "svc"),
            ("client_secret", secret.as_str()),
            ("token", old_token.as_str()),
        ])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(introspected["active"], true);
    let dana: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/token",
            server.url
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "svc"),
            ("client_secret", secret.as_str()),
            ("username", "dana"),
            ("password", "dana-pw"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(
        dana["error"], "unauthorized_client",
        "svc has no direct access grants: {dana}"
    );
    server.stop();
}

#[tokio::test]
async fn a_wrong_master_key_fails_the_start_clearly() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut server = Server::start(
        &data,
        &[("TESSERA_BOOTSTRAP_ADMIN_PASSWORD", "pw-0123456789")],
        &[],
    );
    server.wait_ready().await;
    server.stop();
    let other = "0000000000000000000000000000000000000000000000000000000000000000";
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("TESSERA_MASTER_KEY", other)
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another master key"), "{err}");
}

#[tokio::test]
async fn config_file_and_environment_are_applied() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("tessera.toml");
    std::fs::write(
        &cfg,
        "default_realm = \"che\"\nche_client_id = \"che-public\"\n",
    )
    .expect("write");
    let mut server = Server::start(
        &dir.path().join("data"),
        &[
            ("TESSERA_CONFIG", cfg.to_str().expect("utf8")),
            ("TESSERA_BOOTSTRAP_ADMIN_PASSWORD", "pw-0123456789"),
            ("TESSERA_PUBLIC_URL", "https://id.example.test"),
        ],
        &[],
    );
    server.wait_ready().await;
    let s: Value = reqwest::get(format!("{}/api/keycloak/settings", server.url))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        s["che.keycloak.realm"], "che",
        "default realm created and used"
    );
    assert_eq!(s["che.keycloak.client_id"], "che-public");
    assert_eq!(
        s["che.keycloak.token.endpoint"],
        "https://id.example.test/auth/realms/che/protocol/openid-connect/token"
    );
    server.stop();
}

#[tokio::test]
async fn postgres_by_database_url() {
    let Some(db) = tessera_store_postgres::TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let key = "1111111111111111111111111111111111111111111111111111111111111111";
    let envs = [
        ("TESSERA_BOOTSTRAP_ADMIN_PASSWORD", "pw-0123456789"),
        ("TESSERA_MASTER_KEY", key),
    ];
    // Two stateless nodes behind one public URL, as behind a load balancer.
    let args = [
        "--database-url",
        db.url.as_str(),
        "--public-url",
        "http://lb.example.test",
    ];
    let mut a = Server::start(&dir.path().join("a"), &envs, &args);
    a.wait_ready().await;
    let ready: Value = reqwest::get(format!("{}/health/ready", a.url))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["checks"][0]["backend"], "postgres");
    // A second node on the same database serves the same realm and keys.
    let mut b = Server::start(&dir.path().join("b"), &envs, &args);
    b.wait_ready().await;
    let token: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            a.url
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", "pw-0123456789"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let at = token["access_token"].as_str().expect("access token");
    let info = reqwest::Client::new()
        .get(format!(
            "{}/realms/master/protocol/openid-connect/userinfo",
            b.url
        ))
        .bearer_auth(at)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(info.status(), 200, "node B accepts node A's token");
    let rt = token["refresh_token"].as_str().expect("refresh");
    let refreshed: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            b.url
        ))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "admin-cli"),
            ("refresh_token", rt),
        ])
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    assert!(
        refreshed["access_token"].is_string(),
        "node B refreshes node A's session: {refreshed}"
    );
    a.stop();
    b.stop();
}

/// `cargo test` builds the package's examples next to the test binaries.
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} missing: run the tests with `cargo test`, which builds examples",
        path.display()
    );
    path
}

#[tokio::test]
async fn example_agent_runs_from_workspace_env() {
    let dir = tempfile::tempdir().expect("tmp");
    let envs = [("TESSERA_BOOTSTRAP_ADMIN_PASSWORD", "pw-0123456789")];
    let mut server = Server::start(&dir.path().join("data"), &envs, &[]);
    server.wait_ready().await;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            server.url
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", "pw-0123456789"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let admin = token["access_token"].as_str().expect("access token");
    // Workspaces live in the default realm (`tessera`), never the admin realm.
    let created = http
        .post(format!("{}/admin/realms/tessera/users", server.url))
        .bearer_auth(admin)
        .json(&serde_json::json!({"username": "dev", "enabled": true,
            "credentials": [{"type": "password", "value": "dev-password", "temporary": false}]}))
        .send()
        .await
        .expect("create user");
    assert!(created.status().is_success(), "{}", created.status());
    let token: Value = http
        .post(format!(
            "{}/realms/tessera/protocol/openid-connect/token",
            server.url
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "tessera-cli"),
            ("username", "dev"),
            ("password", "dev-password"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let user_token = token["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let mut ids = Vec::new();
    for name in ["ws-a", "ws-b"] {
        let created: Value = http
            .post(format!("{}/api/workspace", server.url))
            .bearer_auth(&user_token)
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let id = created["id"].as_str().expect("id").to_string();
        let started = http
            .post(format!("{}/api/workspace/{id}/runtime", server.url))
            .bearer_auth(&user_token)
            .send()
            .await
            .expect("start");
        assert!(started.status().is_success());
        ids.push(id);
    }
    // The CLI prints the agent's environment as shell exports...
    let out = tessera(
        &["workspace", "env", &ids[0], "--url", &server.url],
        &[("TESSERA_TOKEN", &user_token)],
        None,
    );
    let exports = ok(&out);
    let vars: Vec<(String, String)> = exports
        .lines()
        .map(|l| {
            let (k, v) = l
                .strip_prefix("export ")
                .expect("export line")
                .split_once('=')
                .expect("k=v");
            (k.to_string(), v.trim_matches('\'').to_string())
        })
        .collect();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "CHE_MACHINE_AUTH_SIGNATURE__ALGORITHM",
            "CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY",
            "CHE_MACHINE_TOKEN",
            "CHE_WORKSPACE_ID"
        ]
    );
    // ...and as JSON.
    let json_out: Value = serde_json::from_str(&ok(&tessera(
        &[
            "workspace",
            "env",
            "dev/ws-b",
            "--url",
            &server.url,
            "--output",
            "json",
        ],
        &[("TESSERA_TOKEN", &user_token)],
        None,
    )))
    .expect("json");
    assert_eq!(
        json_out["CHE_WORKSPACE_ID"],
        ids[1].as_str(),
        "namespace/name works as the key"
    );
    let other_machine_token = json_out["CHE_MACHINE_TOKEN"]
        .as_str()
        .expect("token")
        .to_string();
    // Without a token: one clear line, non-zero exit.
    let bad = tessera(
        &["workspace", "env", &ids[0], "--url", &server.url],
        &[("TESSERA_TOKEN", "nope")],
        None,
    );
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );

    // The example agent, started with only that environment.
    let mut agent = Command::new(example("che_agent"))
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AGENT_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start agent");
    let mut line = String::new();
    BufReader::new(agent.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("agent prints its address");
    let agent_url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address line")
        .to_string();
    let own_token = vars
        .iter()
        .find(|(k, _)| k == "CHE_MACHINE_TOKEN")
        .map(|(_, v)| v.clone())
        .expect("token");
    let whoami = |t: String| {
        let (http, url) = (http.clone(), agent_url.clone());
        async move {
            http.get(format!("{url}/api/whoami"))
                .bearer_auth(t)
                .send()
                .await
                .expect("agent")
        }
    };
    let accepted = whoami(own_token).await;
    assert_eq!(accepted.status(), 200);
    let body: Value = accepted.json().await.expect("json");
    assert_eq!(body["workspace"], ids[0].as_str());
    assert_eq!(body["username"], "dev");
    assert_eq!(
        whoami(user_token.clone()).await.status(),
        401,
        "agents refuse user tokens"
    );
    assert_eq!(
        whoami(other_machine_token).await.status(),
        401,
        "agents refuse other workspaces' machine tokens"
    );
    agent.kill().ok();
    agent.wait().ok();
    server.stop();
}

/// `personal_sign` with a fresh key: (did, signature of `message`).
fn eth_sign(key: &k256::ecdsa::SigningKey, message: &str) -> String {
    use sha3::{Digest, Keccak256};
    let prefixed = format!("\x19Ethereum Signed Message:\n{}{message}", message.len());
    let (sig, recid) = key
        .sign_prehash_recoverable(&Keccak256::digest(prefixed.as_bytes()))
        .expect("sign");
    let mut out = sig.to_bytes().to_vec();
    out.push(27 + recid.to_byte());
    hex::encode(out)
}

fn eth_did(key: &k256::ecdsa::SigningKey) -> String {
    use sha3::{Digest, Keccak256};
    let point = key.verifying_key().to_encoded_point(false);
    let address = &Keccak256::digest(&point.as_bytes()[1..])[12..];
    format!("did:ethr:0x{}", hex::encode(address))
}

#[tokio::test]
async fn admin_gc_removes_expired_rows_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut server = Server::start(
        &data,
        &[
            ("TESSERA_CONSENT_CHALLENGE_SECS", "1"),
            ("TESSERA_CONSENT_REFRESH_TOKEN_SECS", "1"),
        ],
        &[],
    );
    server.wait_ready().await;
    let http = reqwest::Client::new();
    let key = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let did = eth_did(&key);
    let post = |op: &str, body: serde_json::Value| {
        http.post(format!("{}/auth/{op}", server.url))
            .json(&body)
            .send()
    };
    // Asking for challenges writes nothing; answering one is recorded.
    for _ in 0..3 {
        let r = post(
            "generateAuthJwt",
            serde_json::json!({"did": did, "contextName": "GC"}),
        )
        .await
        .expect("request");
        assert!(r.status().is_success());
    }
    let r: Value = post(
        "generateAuthJwt",
        serde_json::json!({"did": did, "contextName": "GC"}),
    )
    .await
    .expect("request")
    .json()
    .await
    .expect("json");
    let id = r["authJwt"]["authRequestId"].as_str().expect("id");
    let message = format!("Authenticate this application context: \"GC\"?\n\n{did}\n{id}");
    let r = post(
        "authenticate",
        serde_json::json!({"authJwt": r["authJwt"]["authJwt"], "did": did, "contextName": "GC",
                           "deviceId": "d1", "signature": eth_sign(&key, &message)}),
    )
    .await
    .expect("request");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    server.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let data_s = data.to_str().expect("utf-8 path");
    let first = ok(&tessera(&["admin", "gc", "--data-dir", data_s], &[], None));
    assert_eq!(
        first.trim(),
        "removed 1 refresh tokens, 1 sessions, 1 consent challenges, 0 codes, 0 browser sessions"
    );
    let second = ok(&tessera(&["admin", "gc", "--data-dir", data_s], &[], None));
    assert_eq!(
        second.trim(),
        "removed 0 refresh tokens, 0 sessions, 0 consent challenges, 0 codes, 0 browser sessions"
    );
    let remote = tessera(
        &["admin", "--server", "http://127.0.0.1:9", "gc"],
        &[],
        None,
    );
    assert!(!remote.status.success());
    let err = String::from_utf8_lossy(&remote.stderr);
    assert!(err.contains("works on the database"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
