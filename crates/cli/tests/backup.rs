//! `tessera admin backup` and `restore` end to end: a backup taken while
//! clients refresh against a running server restores into a new data
//! directory whose server honours the refresh tokens issued before the
//! backup (and not those issued after it); a backup never overwrites a file
//! and never holds the master key; a restore refuses a file that is not a
//! Tessera database, an existing database without `--force`, a database a
//! server has open, and a master key other than the backup's. A database
//! newer than the binary is refused at start. PostgreSQL points at pg_dump.

use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::*;

const ADMIN_PW: &str = "pw-0123456789";

fn token_url(base: &str) -> String {
    format!("{base}/realms/demo/protocol/openid-connect/token")
}

/// Posts a token request; the status and the JSON body.
async fn token(http: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let res = http
        .post(token_url(base))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn password_grant(http: &reqwest::Client, base: &str, secret: &str) -> String {
    let (status, body) = token(
        http,
        base,
        &[
            ("grant_type", "password"),
            ("client_id", "app"),
            ("client_secret", secret),
            ("username", "alice"),
            ("password", "alice-pw"),
        ],
    )
    .await;
    assert_eq!(status, 200, "password grant: {}", body["error"]);
    body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string()
}

async fn refresh(http: &reqwest::Client, base: &str, secret: &str, rt: &str) -> (u16, Value) {
    token(
        http,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "app"),
            ("client_secret", secret),
            ("refresh_token", rt),
        ],
    )
    .await
}

async fn jwks(base: &str) -> Value {
    reqwest::get(format!("{base}/realms/demo/protocol/openid-connect/certs"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json")
}

/// Realm `demo`, confidential client `app` (password grant), user `alice`,
/// through the Admin API: the client's secret.
async fn provision(http: &reqwest::Client, url: &str) -> String {
    let token = admin_token(http, url, ADMIN_PW).await;
    admin_create(
        http,
        url,
        &token,
        vec![
            ("/admin/realms".to_string(), json!({"realm": "demo", "enabled": true})),
            (
                "/admin/realms/demo/clients".to_string(),
                json!({"clientId": "app", "publicClient": false, "directAccessGrantsEnabled": true}),
            ),
            (
                "/admin/realms/demo/users".to_string(),
                json!({"username": "alice", "enabled": true,
                "credentials": [{"type": "password", "value": "alice-pw", "temporary": false}]}),
            ),
        ],
    )
    .await;
    client_secret(http, url, &token, "demo", "app").await
}

fn copy_private(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

fn failed_with(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_refresh_load_restores_to_a_working_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut server = Server::start(&a, &[("TESSERA_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PW)], &[]);
    server.wait_ready().await;
    let url = server.url.clone();
    let http = reqwest::Client::new();
    let secret = provision(&http, &url).await;

    // Issued before the backup and left alone: must work on the restored server.
    let kept = password_grant(&http, &url, &secret).await;

    // Four chains refresh as fast as they can while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut chains = Vec::new();
    for _ in 0..4 {
        let first = password_grant(&http, &url, &secret).await;
        let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
        let (stop, done) = (stop.clone(), done.clone());
        chains.push(tokio::spawn(async move {
            let mut rt = first;
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = refresh(&http, &url, &secret, &rt).await;
                assert_eq!(status, 200, "refresh under backup: {}", body["error"]);
                rt = body["refresh_token"].as_str().expect("rt").to_string();
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    while done.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let file = dir.path().join("tessera-backup.db");
    let file_s = file.to_str().expect("utf8").to_string();
    let a_s = a.to_str().expect("utf8").to_string();
    let before = done.load(Ordering::SeqCst);
    let out = {
        let (file_s, a_s) = (file_s.clone(), a_s.clone());
        tokio::task::spawn_blocking(move || {
            tessera(&["admin", "backup", &file_s, "--data-dir", &a_s], &[], None)
        })
        .await
        .expect("backup")
    };
    let printed = ok(&out);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for chain in chains {
        chain.await.expect("every refresh succeeded");
    }
    assert!(
        done.load(Ordering::SeqCst) > before,
        "refreshes went on during the backup"
    );
    assert!(
        printed.contains("does not contain the master key"),
        "{printed}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the backup is private");
    }
    let key_text = std::fs::read_to_string(a.join("master.key")).expect("key");
    let raw = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(key_text.trim())
            .expect("base64 key")
    };
    let bytes = std::fs::read(&file).expect("backup");
    for key in [key_text.trim().as_bytes(), &raw[..]] {
        assert!(
            !bytes.windows(key.len()).any(|w| w == key),
            "no master key in the backup"
        );
    }

    // Issued after the backup: unknown to the restored server.
    let later = password_grant(&http, &url, &secret).await;
    // Never over an existing file.
    failed_with(
        &tessera(&["admin", "backup", &file_s, "--data-dir", &a_s], &[], None),
        "already exists",
    );

    // Restore into a new data directory, first without the master key.
    let b_s = b.to_str().expect("utf8").to_string();
    let out = ok(&tessera(
        &["admin", "restore", &file_s, "--data-dir", &b_s],
        &[],
        None,
    ));
    assert!(out.contains("warning: there is no master key"), "{out}");
    failed_with(
        &tessera(
            &["admin", "restore", &file_s, "--data-dir", &b_s],
            &[],
            None,
        ),
        "pass --force",
    );
    // Another master key cannot unseal the backup's signing keys.
    let wrong = dir.path().join("wrong.key");
    std::fs::write(
        &wrong,
        "2222222222222222222222222222222222222222222222222222222222222222\n",
    )
    .expect("key");
    copy_private(&wrong, &b.join("master.key"));
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("db"));
    let before = inode(&b.join("tessera.db"));
    failed_with(
        &tessera(
            &["admin", "restore", &file_s, "--force", "--data-dir", &b_s],
            &[],
            None,
        ),
        "does not unseal the signing keys",
    );
    assert_eq!(
        inode(&b.join("tessera.db")),
        before,
        "a wrong key is found before the database it would replace is touched"
    );
    // The right key: restored and checked.
    std::fs::remove_file(b.join("master.key")).expect("rm");
    copy_private(&a.join("master.key"), &b.join("master.key"));
    let out = ok(&tessera(
        &["admin", "restore", &file_s, "--force", "--data-dir", &b_s],
        &[],
        None,
    ));
    assert!(out.contains("unseals the signing keys"), "{out}");

    let mut restored = Server::start(&b, &[], &[]);
    restored.wait_ready().await;
    let (status, body) = refresh(&http, &restored.url, &secret, &kept).await;
    assert_eq!(
        status, 200,
        "a token issued before the backup works: {}",
        body["error"]
    );
    let (status, _) = refresh(&http, &restored.url, &secret, &later).await;
    assert_eq!(status, 400, "a token issued after the backup is unknown");
    let kids = |j: Value| -> Vec<String> {
        j["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(kids(jwks(&url).await), kids(jwks(&restored.url).await));

    // A server has it open: refused, even with --force.
    failed_with(
        &tessera(
            &["admin", "restore", &file_s, "--force", "--data-dir", &b_s],
            &[],
            None,
        ),
        "is in use",
    );
    drop(restored);
    drop(server);
}

#[test]
fn restore_refuses_a_file_that_is_not_a_tessera_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("notes.db");
    std::fs::write(&file, "not a database at all").expect("write");
    let data = dir.path().join("data");
    failed_with(
        &tessera(
            &[
                "admin",
                "restore",
                file.to_str().expect("utf8"),
                "--data-dir",
                data.to_str().expect("utf8"),
            ],
            &[],
            None,
        ),
        "is not a SQLite database",
    );
    assert!(!data.join("tessera.db").exists());
}

#[test]
fn postgres_points_at_pg_dump() {
    for command in ["backup", "restore"] {
        failed_with(
            &tessera(
                &[
                    "admin",
                    command,
                    "/tmp/never-written.db",
                    "--database-url",
                    "postgres://nobody@127.0.0.1:1/none",
                ],
                &[],
                None,
            ),
            "pg_dump",
        );
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused_at_start() {
    use sqlx::{ConnectOptions, Connection};
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut server = Server::start(
        &data,
        &[("TESSERA_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PW)],
        &[],
    );
    server.wait_ready().await;
    server.stop();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("tessera.db"))
        .connect()
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .expect("fake migration");
    conn.close().await.expect("close");
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("TESSERA_MASTER_KEY")
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database schema version 9999 is newer than this tessera knows (")
            && err.trim_end().ends_with("); upgrade tessera"),
        "{err}"
    );
}
