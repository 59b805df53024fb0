//! The developer commands end to end, with the real binary against a server
//! on a free port: connections, `login --password-stdin`, `sectoken get`
//! (cache, refresh, re-authentication with the stored password, one refresh
//! for ten concurrent callers), `logout`, and the keychains (kernel keyutils
//! with a session keyring made by this test process, and the encrypted file).

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::Output;
use std::time::Duration;

const ADMIN_PW: &str = "dev-admin-pw";
const USER_PW: &str = "erin-password-1";

/// A server with realm `dev` (access tokens live 40 s, so with the CLI's
/// 30 s margin a cached token is fresh for 10 s), public client `ide` and
/// user `erin`.
async fn server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Server::start(
        &dir.path().join("data"),
        &[("TESSERA_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PW)],
        &[],
    );
    s.wait_ready().await;
    let http = reqwest::Client::new();
    let admin: Value = http
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            s.url
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", ADMIN_PW),
        ])
        .send()
        .await
        .expect("admin token")
        .json()
        .await
        .expect("json");
    let token = admin["access_token"].as_str().expect("token").to_string();
    for (path, body) in [
        (
            "/admin/realms",
            json!({"realm": "dev", "enabled": true, "accessTokenLifespan": 40}),
        ),
        (
            "/admin/realms/dev/clients",
            json!({"clientId": "ide", "publicClient": true, "directAccessGrantsEnabled": true,
            "attributes": {"oauth2.device.authorization.grant.enabled": "true"}}),
        ),
        (
            "/admin/realms/dev/users",
            json!({"username": "erin", "email": "erin@example.com",
            "credentials": [{"type": "password", "value": USER_PW}]}),
        ),
    ] {
        let r = http
            .post(format!("{}{path}", s.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("admin");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    (s, dir)
}

struct Cli<'a> {
    home: String,
    keyring: &'a [&'a str],
}

impl Cli<'_> {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(self.keyring);
        tessera(
            &all,
            &[("TESSERA_CLI_HOME", self.home.as_str()), ("NO_COLOR", "1")],
            stdin,
        )
    }
    fn json(&self, args: &[&str]) -> Value {
        let out = ok(&self.run(args, None));
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("not one JSON object: {out:?}"))
    }
}

async fn userinfo(url: &str, access: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(format!("{url}/realms/dev/protocol/openid-connect/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("userinfo")
        .status()
}

async fn refreshes(url: &str) -> u64 {
    issued(url, "refresh_token").await
}

/// Tokens the server issued for a grant, from `/metrics`.
async fn issued(url: &str, grant: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let label = format!("grant=\"{grant}\"");
    text.lines()
        .find(|l| l.starts_with("tessera_tokens_issued_total{") && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map(|n| n as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_login_sectoken_refresh_reauth_and_logout() {
    let (server, dir) = server().await;
    let cli = Cli {
        home: dir.path().join("cli").to_string_lossy().into(),
        keyring: &["--insecure-keyring"],
    };
    ok(&cli.run(
        &[
            "connections",
            "add",
            "--id",
            "Dev",
            "--url",
            &server.url,
            "--realm",
            "dev",
            "--client-id",
            "ide",
            "--username",
            "erin",
        ],
        None,
    ));
    // IDs are case-insensitive; a duplicate is refused with the usage code.
    let dup = cli.run(
        &[
            "connections",
            "add",
            "--id",
            "dev",
            "--url",
            &server.url,
            "--realm",
            "dev",
            "--client-id",
            "ide",
        ],
        None,
    );
    assert_eq!(dup.status.code(), Some(2));
    let listed = cli.json(&["connections", "list", "--output", "json"]);
    assert_eq!(listed[0]["id"], "Dev");
    // Not signed in yet: "login required".
    let none = cli.run(&["sectoken", "get", "--conn", "dev"], None);
    assert_eq!(none.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&none.stderr).contains("tessera login --conn"));
    assert!(none.stdout.is_empty());
    // A wrong password changes nothing.
    let bad = cli.run(
        &["login", "--conn", "dev", "--password-stdin"],
        Some("wrong\n"),
    );
    assert_eq!(bad.status.code(), Some(3));
    ok(&cli.run(
        &["login", "--conn", "DEV", "--password-stdin"],
        Some(&format!("{USER_PW}\n")),
    ));
    let first = cli.json(&["sectoken", "get", "--conn", "dev"]);
    for k in [
        "access_token",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
        "token_type",
    ] {
        assert!(first.get(k).is_some(), "{k} in {first}");
    }
    assert_eq!(
        userinfo(&server.url, first["access_token"].as_str().expect("at")).await,
        200
    );
    // Cached while fresh.
    let again = cli.json(&["sectoken", "get", "--conn", "dev"]);
    assert_eq!(again["access_token"], first["access_token"]);
    // Stale: refreshed, and the rotated refresh token is kept.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = refreshes(&server.url).await;
    let refreshed = cli.json(&["sectoken", "get", "--conn", "dev"]);
    assert_ne!(refreshed["access_token"], first["access_token"]);
    assert_ne!(refreshed["refresh_token"], first["refresh_token"]);
    assert_eq!(refreshes(&server.url).await, before + 1);
    // The refresh token is revoked server-side: the stored password signs in again.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/realms/dev/protocol/openid-connect/revoke",
            server.url
        ))
        .form(&[
            ("client_id", "ide"),
            ("token", refreshed["refresh_token"].as_str().expect("rt")),
        ])
        .send()
        .await
        .expect("revoke");
    assert!(r.status().is_success());
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (refreshes_before, passwords_before) = (
        refreshes(&server.url).await,
        issued(&server.url, "password").await,
    );
    let reauth = cli.json(&["sectoken", "get", "--conn", "dev"]);
    assert_eq!(
        refreshes(&server.url).await,
        refreshes_before,
        "the revoked token refreshed nothing"
    );
    assert_eq!(
        issued(&server.url, "password").await,
        passwords_before + 1,
        "signed in with the stored password"
    );
    assert_ne!(reauth["refresh_token"], refreshed["refresh_token"]);
    assert_eq!(
        userinfo(&server.url, reauth["access_token"].as_str().expect("at")).await,
        200
    );
    let who = cli.json(&["whoami", "--conn", "dev", "-o", "json"]);
    assert_eq!(who["preferred_username"], "erin");
    // whoami used the cached token, so the stored refresh token is still
    // `reauth`'s, unspent: the 400 below can only come from logout.
    assert_eq!(refreshes(&server.url).await, refreshes_before);
    // Logout revokes server-side and forgets everything.
    ok(&cli.run(&["logout", "--conn", "dev"], None));
    let r = reqwest::Client::new()
        .post(format!(
            "{}/realms/dev/protocol/openid-connect/token",
            server.url
        ))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "ide"),
            (
                "refresh_token",
                reauth["refresh_token"].as_str().expect("rt"),
            ),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(r.status(), 400, "revoked at logout");
    let after = cli.run(&["sectoken", "get", "--conn", "dev"], None);
    assert_eq!(after.status.code(), Some(3));
    // The file store: 0600, and no secret readable in it.
    use std::os::unix::fs::PermissionsExt;
    let home = std::path::Path::new(&cli.home);
    for f in ["secrets.enc", "secrets.key", "connections.toml"] {
        let mode = std::fs::metadata(home.join(f))
            .expect(f)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    ok(&cli.run(
        &["secstore", "set", "--conn", "dev"],
        Some(&format!("{USER_PW}\n")),
    ));
    let sealed = std::fs::read(home.join("secrets.enc")).expect("store");
    assert!(
        !sealed
            .windows(USER_PW.len())
            .any(|w| w == USER_PW.as_bytes()),
        "password in plaintext"
    );
    assert!(!String::from_utf8_lossy(&sealed).contains("erin"));
    // Without --insecure-keyring the file store is refused.
    let refused = tessera(
        &["sectoken", "get", "--conn", "dev", "--keyring", "file"],
        &[("TESSERA_CLI_HOME", cli.home.as_str())],
        None,
    );
    assert_eq!(refused.status.code(), Some(2));
    // Unknown connection, unreachable server: distinct codes.
    assert_eq!(
        cli.run(&["sectoken", "get", "--conn", "nope"], None)
            .status
            .code(),
        Some(2)
    );
    server.stop();
    let down = cli.run(&["sectoken", "get", "--conn", "dev"], None);
    assert_eq!(
        down.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_sectoken_gets_refresh_once() {
    let (server, dir) = server().await;
    let cli = Cli {
        home: dir.path().join("cli").to_string_lossy().into(),
        keyring: &["--insecure-keyring"],
    };
    ok(&cli.run(
        &[
            "connections",
            "add",
            "--id",
            "c",
            "--url",
            &server.url,
            "--realm",
            "dev",
            "--client-id",
            "ide",
            "--username",
            "erin",
        ],
        None,
    ));
    ok(&cli.run(
        &["login", "--conn", "c", "--password-stdin"],
        Some(&format!("{USER_PW}\n")),
    ));
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = refreshes(&server.url).await;
    let home = cli.home.clone();
    let runs: Vec<_> = (0..10)
        .map(|_| {
            let home = home.clone();
            std::thread::spawn(move || {
                tessera(
                    &["sectoken", "get", "--conn", "c", "--insecure-keyring"],
                    &[("TESSERA_CLI_HOME", home.as_str())],
                    None,
                )
            })
        })
        .collect();
    let outs: Vec<Value> = runs
        .into_iter()
        .map(|t| serde_json::from_str(&ok(&t.join().expect("thread"))).expect("json"))
        .collect();
    assert_eq!(
        refreshes(&server.url).await,
        before + 1,
        "one refresh for ten callers"
    );
    for o in &outs {
        assert_eq!(o["access_token"], outs[0]["access_token"]);
        assert_eq!(
            userinfo(&server.url, o["access_token"].as_str().expect("at")).await,
            200
        );
    }
    server.stop();
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kernel_keyutils_store() {
    // This process gets a session keyring; the CLI processes inherit it.
    linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true)
        .expect("a session keyring");
    let (server, dir) = server().await;
    let id = format!("k{}", std::process::id());
    let cli = Cli {
        home: dir.path().join("cli").to_string_lossy().into(),
        keyring: &["--keyring", "keyutils"],
    };
    ok(&cli.run(
        &[
            "connections",
            "add",
            "--id",
            &id,
            "--url",
            &server.url,
            "--realm",
            "dev",
            "--client-id",
            "ide",
            "--username",
            "erin",
        ],
        None,
    ));
    ok(&cli.run(
        &["login", "--conn", &id, "--password-stdin"],
        Some(&format!("{USER_PW}\n")),
    ));
    let t = cli.json(&["sectoken", "get", "--conn", &id]);
    assert_eq!(
        userinfo(&server.url, t["access_token"].as_str().expect("at")).await,
        200
    );
    assert_eq!(
        ok(&cli.run(&["secstore", "get", "--conn", &id], None)).trim(),
        USER_PW
    );
    assert!(
        !std::path::Path::new(&cli.home).join("secrets.enc").exists(),
        "nothing on disk"
    );
    ok(&cli.run(&["secstore", "delete", "--conn", &id], None));
    assert_eq!(
        cli.run(&["secstore", "get", "--conn", &id], None)
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        cli.run(&["sectoken", "get", "--conn", &id], None)
            .status
            .code(),
        Some(3)
    );
    server.stop();
}

#[test]
fn completions_and_json_only_output() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(&tessera(&["completions", shell], &[], None));
        assert!(out.contains("sectoken"), "{shell}");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().to_string_lossy().to_string();
    let out = tessera(
        &[
            "connections",
            "add",
            "--id",
            "x",
            "--url",
            "http://127.0.0.1:1",
            "--realm",
            "r",
            "--client-id",
            "c",
            "-o",
            "json",
        ],
        &[("TESSERA_CLI_HOME", home.as_str())],
        None,
    );
    let v: Value = serde_json::from_str(&ok(&out)).expect("only JSON on stdout");
    assert_eq!(v["id"], "x");
    let bad = tessera(
        &[
            "connections",
            "add",
            "--id",
            "bad id!",
            "--url",
            "ftp://x",
            "--realm",
            "r",
            "--client-id",
            "c",
        ],
        &[("TESSERA_CLI_HOME", home.as_str())],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}
