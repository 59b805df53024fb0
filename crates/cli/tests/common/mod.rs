//! Shared by the binary's end-to-end tests: a server on a free port, and
//! running the binary with arguments, environment and stdin.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub stdout: std::sync::mpsc::Receiver<String>,
}

impl Server {
    pub fn start(data_dir: &Path, envs: &[(&str, &str)], extra: &[&str]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env_remove("TESSERA_BOOTSTRAP_ADMIN_PASSWORD")
        .env_remove("TESSERA_MASTER_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tessera");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            stdout: rx,
        }
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    std::io::Read::read_to_string(&mut e, &mut err).ok();
                }
                panic!("server exited early ({status}): {err}");
            }
            if let Ok(r) = reqwest::get(format!("{}/health/ready", self.url)).await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server not ready in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn printed(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }

    /// SIGTERM, then expect a clean exit within 10 s.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "graceful shutdown exits 0, got {status}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    /// A test that fails before `stop` must not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tessera(args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("TESSERA_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("output")
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An access token of the master realm's `admin` (password grant).
pub async fn admin_token(http: &reqwest::Client, url: &str, password: &str) -> String {
    let res = http
        .post(format!("{url}/realms/master/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", password),
        ])
        .send()
        .await
        .expect("admin token");
    let status = res.status();
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(status.is_success(), "admin sign-in: {status}");
    body["access_token"].as_str().expect("token").to_string()
}

/// POSTs each `(path, body)` to the Admin API in turn; each must succeed.
pub async fn admin_create(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    items: Vec<(String, serde_json::Value)>,
) {
    for (path, body) in items {
        let res = http
            .post(format!("{url}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("admin call");
        assert!(res.status().is_success(), "{path}: {}", res.status());
    }
}

/// The secret of confidential client `client_id` of `realm`.
pub async fn client_secret(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    realm: &str,
    client_id: &str,
) -> String {
    let get = |path: String| async move {
        http.get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("admin call")
            .json::<serde_json::Value>()
            .await
            .expect("json")
    };
    let clients = get(format!(
        "/admin/realms/{realm}/clients?clientId={client_id}"
    ))
    .await;
    let id = clients[0]["id"].as_str().expect("client id");
    let secret = get(format!("/admin/realms/{realm}/clients/{id}/client-secret")).await;
    secret["value"].as_str().expect("secret").to_string()
}
