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
    add_connection(&cli, &server, "Dev");
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
    add_connection(&cli, &server, "c");
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
    add_connection(&cli, &server, &id);
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

/// Adds connection `id` for erin on `server` to `cli`'s home.
fn add_connection(cli: &Cli, server: &Server, id: &str) {
    ok(&cli.run(
        &[
            "connections",
            "add",
            "--id",
            id,
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remembered_keychain_exec_credential_and_git_helper() {
    let (server, dir) = server().await;
    // One access token serves the whole test (40 s would leave 10 s).
    let http = reqwest::Client::new();
    let admin = admin_token(&http, &server.url, ADMIN_PW).await;
    let r = http
        .put(format!("{}/admin/realms/dev", server.url))
        .bearer_auth(&admin)
        .json(&json!({"accessTokenLifespan": 600}))
        .send()
        .await
        .expect("realm");
    assert!(r.status().is_success(), "{}", r.status());
    // No keychain flag on any command but the login: what an IDE, git or
    // kubectl runs knows none.
    let cli = Cli {
        home: dir.path().join("cli").to_string_lossy().into(),
        keyring: &[],
    };
    add_connection(&cli, &server, "dev");
    ok(&cli.run(
        &[
            "login",
            "--conn",
            "dev",
            "--password-stdin",
            "--insecure-keyring",
        ],
        Some(&format!("{USER_PW}\n")),
    ));
    let shown = cli.json(&["connections", "show", "dev", "-o", "json"]);
    assert_eq!(shown["keychain"], "file", "{shown}");
    let plain = cli.run(&["sectoken", "get", "--conn", "dev"], None);
    let token: Value = serde_json::from_str(&ok(&plain)).expect("json");
    let access = token["access_token"].as_str().expect("at").to_string();
    assert_eq!(userinfo(&server.url, &access).await, 200);
    assert!(
        plain.stderr.is_empty(),
        "no warning for a remembered choice: {}",
        String::from_utf8_lossy(&plain.stderr)
    );

    // kubectl's exec plugin protocol, in the version KUBERNETES_EXEC_INFO asks.
    let exec = |info: Option<&str>| {
        let home = cli.home.as_str();
        let mut envs = vec![("TESSERA_CLI_HOME", home)];
        if let Some(i) = info {
            envs.push(("KUBERNETES_EXEC_INFO", i));
        }
        tessera(
            &["sectoken", "get", "--conn", "dev", "-o", "exec-credential"],
            &envs,
            None,
        )
    };
    for (info, version) in [
        (None, "client.authentication.k8s.io/v1beta1"),
        (
            Some(
                r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#,
            ),
            "client.authentication.k8s.io/v1",
        ),
        (
            Some(
                r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}"#,
            ),
            "client.authentication.k8s.io/v1beta1",
        ),
    ] {
        let v: Value = serde_json::from_str(&ok(&exec(info))).expect("json");
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["apiVersion"], version);
        assert_eq!(v["status"]["token"], access.as_str());
        let at = v["status"]["expirationTimestamp"].as_str().expect("expiry");
        assert!(at.starts_with("20") && at.ends_with('Z'), "{at}");
    }
    let bad = exec(Some(r#"{"apiVersion":"client.authentication.k8s.io/v2"}"#));
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
    let misplaced = cli.run(&["connections", "list", "-o", "exec-credential"], None);
    assert_eq!(misplaced.status.code(), Some(2));

    // git's credential helper protocol.
    let git = |op: &str, input: &str| cli.run(&["credential", "--conn", "dev", op], Some(input));
    let answer = ok(&git(
        "get",
        "protocol=http\nhost=127.0.0.1:9418\npath=r.git\n\n",
    ));
    assert!(answer.contains(&format!("password={access}\n")), "{answer}");
    assert!(answer.contains("username=erin\n"), "{answer}");
    for (input, why) in [
        (
            "protocol=http\nhost=git.example\n\n",
            "plain http off this machine",
        ),
        ("protocol=ssh\nhost=git.example\n\n", "not https"),
    ] {
        let refused = git("get", input);
        assert_eq!(refused.status.code(), Some(2), "{why}");
        assert!(refused.stdout.is_empty(), "{why}");
    }
    ok(&git(
        "store",
        &format!("protocol=https\nhost=h\npassword={access}\n\n"),
    ));
    // `erase` of another password changes nothing; of ours, drops it, and
    // the next `get` refreshes.
    ok(&git("erase", "protocol=https\nhost=h\npassword=other\n\n"));
    let same = cli.json(&["sectoken", "get", "--conn", "dev"]);
    assert_eq!(same["access_token"], access.as_str());
    let before = refreshes(&server.url).await;
    ok(&git(
        "erase",
        &format!("protocol=https\nhost=h\npassword={access}\n\n"),
    ));
    let answer = ok(&git("get", "protocol=https\nhost=h\n\n"));
    assert!(!answer.contains(&access), "a new token after erase");
    assert_eq!(refreshes(&server.url).await, before + 1);

    // The remembered store gone: one line that names it.
    std::fs::remove_file(std::path::Path::new(&cli.home).join("secrets.key")).expect("rm");
    let gone = cli.run(&["sectoken", "get", "--conn", "dev"], None);
    assert_eq!(gone.status.code(), Some(5));
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("file keychain") && err.contains("secrets.key"),
        "{err}"
    );
    server.stop();
}

/// Runs `tessera login ...` with exactly the display-related environment
/// given; its stderr comes line by line.
fn spawn_login(
    home: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("login")
        .args(args)
        .env("TESSERA_CLI_HOME", home)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for v in ["DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_TTY"] {
        cmd.env_remove(v);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines until one contains `want` (all of them, that one last).
fn lines_until(rx: &std::sync::mpsc::Receiver<String>, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                let done = line.contains(want);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("no {want:?} in {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_login_falls_back_to_device_and_takes_port_and_no_open() {
    let (server, dir) = server().await;
    let cli = Cli {
        home: dir.path().join("cli").to_string_lossy().into(),
        keyring: &[],
    };
    add_connection(&cli, &server, "dev");
    let home = cli.home.as_str();

    // No display, or a remote session: the device flow, and it says so.
    for (envs, why) in [
        (vec![], "there is no display"),
        (
            vec![
                ("DISPLAY", ":0"),
                ("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22"),
            ],
            "this is a remote (SSH) session",
        ),
    ] {
        let (mut child, rx) = spawn_login(home, &["--conn", "dev", "--browser"], &envs);
        let seen = lines_until(&rx, "enter the code");
        assert!(
            seen[0].starts_with(&format!("{why}: signing in with a device code instead")),
            "{seen:?}"
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    // A display: the browser login, on the port asked for; the browser is
    // opened (a stand-in xdg-open records the URL) unless --no-open.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let opened = dir.path().join("opened");
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
            opened.display()
        ),
    )
    .expect("script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for no_open in [true, false] {
        let port = free_port();
        let port_arg = port.to_string();
        let mut args = vec!["--conn", "dev", "--browser", "--port", &port_arg];
        if no_open {
            args.push("--no-open");
        }
        let (child, rx) = spawn_login(home, &args, &[("DISPLAY", ":0"), ("PATH", &path)]);
        let seen = lines_until(&rx, "To sign in, open ");
        let url = seen
            .last()
            .and_then(|l| l.split("open ").nth(1))
            .expect("url");
        let url = reqwest::Url::parse(url).expect("a URL");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(
            q["redirect_uri"],
            format!("http://127.0.0.1:{port}/callback")
        );
        // Anyone else on this machine, not knowing the state, is refused
        // and the CLI goes on waiting.
        let stranger = format!("http://127.0.0.1:{port}/callback?state=guess&error=access_denied");
        let r = reqwest::get(&stranger)
            .await
            .expect("the CLI listens on --port");
        assert_eq!(r.status(), 400);
        // The browser says no: the CLI ends.
        let callback = format!(
            "http://127.0.0.1:{port}/callback?state={}&error=access_denied",
            q["state"]
        );
        let r = reqwest::get(&callback).await.expect("still listening");
        assert_eq!(r.status(), 200);
        let out = child.wait_with_output().expect("exit");
        assert_eq!(out.status.code(), Some(3));
        let mut recorded = std::fs::read_to_string(&opened).unwrap_or_default();
        for _ in 0..100 {
            if no_open || !recorded.is_empty() {
                break;
            }
            // xdg-open runs beside the CLI, not waited for.
            std::thread::sleep(Duration::from_millis(50));
            recorded = std::fs::read_to_string(&opened).unwrap_or_default();
        }
        if no_open {
            assert!(recorded.is_empty(), "--no-open opened {recorded}");
        } else {
            assert_eq!(recorded.trim(), url.as_str(), "xdg-open got the URL");
        }
    }
    // --port belongs to --browser.
    let stray = cli.run(&["login", "--conn", "dev", "--port", "8400"], None);
    assert_eq!(stray.status.code(), Some(2));
    server.stop();
}
