//! Upgrades: every data directory kept under `tests/fixtures/release-*`
//! (written by that release, with its test-only master key and the
//! plaintext tokens and credentials it handed out) opens with this binary,
//! and everything it issued still works: the refresh token refreshes, the
//! access token's signature verifies against the unchanged JWKS, the client
//! secret and the passwords sign in.
//!
//! For each release, write its fixture with the ignored test below (see
//! "Upgrades" in docs/operations.md):
//!
//! ```text
//! cargo test -p tessera-cli --test upgrade -- --ignored write_release_fixture
//! ```
//!
//! It writes `tests/fixtures/release-<version>/` (never over an existing
//! one; `TESSERA_FIXTURE_DIR` picks another directory).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

mod common;

use common::*;

const ADMIN_PW: &str = "fixture-admin-pw-1";
const REALM: &str = "fixture";
/// Ten years, the longest session a realm allows: the fixture's refresh
/// token outlives many releases.
const SESSION_SECS: i64 = 10 * 365 * 86_400;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn oidc(base: &str, realm: &str, rest: &str) -> String {
    format!("{base}/realms/{realm}/protocol/openid-connect/{rest}")
}

async fn post_form(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let res = http.post(url).form(form).send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

/// Checks `token`'s signature against the key with its `kid` in `jwks`
/// (signature only: the fixture's access token has long expired).
fn verify_signature(token: &str, jwks: &Value) -> Value {
    let kid = tessera_keys::decode_unverified_header(token)
        .expect("header")
        .kid
        .expect("kid");
    let set: tessera_keys::JwkSet = serde_json::from_value(jwks.clone()).expect("JWKS");
    let jwk = set
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("key {kid} is no longer published"));
    let key = tessera_keys::VerifyingKey::from_jwk(jwk).expect("key");
    tessera_keys::verify_compact(token, &key).expect("signature verifies")
}

#[tokio::test]
async fn release_fixtures_open_with_every_token_still_valid() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("tests/fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("fixture.json").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no release fixture in tests/fixtures");
    for dir in dirs {
        check_fixture(&dir).await;
    }
}

async fn check_fixture(fixture: &Path) {
    let f: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("fixture.json")).expect("fixture.json"),
    )
    .expect("fixture JSON");
    let s = |k: &str| f[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string();
    let (client_id, secret) = (s("client_id"), s("client_secret"));
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    for name in ["tessera.db", "master.key"] {
        std::fs::copy(fixture.join(name), data.join(name)).expect("copy fixture");
        // Git keeps no modes; the master key must be private to be read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        }
    }
    let mut server = Server::start(&data, &[], &[]);
    server.wait_ready().await;
    let url = server.url.clone();
    let http = reqwest::Client::new();
    let what = fixture.display();

    // The signing keys are the ones the release published.
    for realm in [REALM, "master"] {
        let now = get_json(&oidc(&url, realm, "certs")).await;
        for key in f["jwks"][realm]["keys"].as_array().expect("recorded keys") {
            assert!(
                now["keys"]
                    .as_array()
                    .expect("keys")
                    .iter()
                    .any(|k| k == key),
                "{what}: key {} of realm {realm} unchanged",
                key["kid"]
            );
        }
    }
    let claims = verify_signature(&s("access_token"), &f["jwks"][REALM]);
    assert_eq!(claims["preferred_username"], "alice", "{what}");

    // The refresh token refreshes, twice over.
    let (status, body) = post_form(
        &http,
        &oidc(&url, REALM, "token"),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", &s("refresh_token")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{what}: refresh: {}", body["error"]);
    let access = body["access_token"].as_str().expect("access token");
    let old_kid = tessera_keys::decode_unverified_header(&s("access_token"))
        .expect("header")
        .kid;
    assert_eq!(
        tessera_keys::decode_unverified_header(access)
            .expect("header")
            .kid,
        old_kid,
        "{what}: the same key signs"
    );
    let (status, introspected) = post_form(
        &http,
        &oidc(&url, REALM, "token/introspect"),
        &[
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("token", access),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(introspected["active"], true, "{what}");
    assert_eq!(introspected["username"], "alice", "{what}");
    let next = body["refresh_token"].as_str().expect("refresh token");
    let (status, body) = post_form(
        &http,
        &oidc(&url, REALM, "token"),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", next),
        ],
    )
    .await;
    assert_eq!(status, 200, "{what}: second refresh: {}", body["error"]);

    // The client secret and the passwords still sign in.
    let (status, body) = post_form(
        &http,
        &oidc(&url, REALM, "token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{what}: client credentials: {}", body["error"]);
    let (status, body) = post_form(
        &http,
        &oidc(&url, REALM, "token"),
        &[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("username", "alice"),
            ("password", &s("password")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{what}: password: {}", body["error"]);
    admin_token(&http, &url, ADMIN_PW).await;
    drop(server);
}

/// Writes this release's fixture. Ignored: run it once per release (see
/// the module docs) and commit the directory it prints.
#[tokio::test]
#[ignore = "writes tests/fixtures/release-<version>; run once per release"]
async fn write_release_fixture() {
    let out = std::env::var_os("TESSERA_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures().join(format!("release-{}", env!("CARGO_PKG_VERSION"))));
    assert!(
        !out.exists(),
        "{} exists: a release's fixture is never rewritten",
        out.display()
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = Server::start(
        &data,
        &[("TESSERA_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PW)],
        &[],
    );
    server.wait_ready().await;
    let url = server.url.clone();
    let http = reqwest::Client::new();
    let admin = admin_token(&http, &url, ADMIN_PW).await;
    let password = "alice-fixture-pw-1";
    admin_create(
        &http,
        &url,
        &admin,
        vec![
            (
                "/admin/realms".to_string(),
                json!({"realm": REALM, "enabled": true, "defaultSignatureAlgorithm": "ES256",
                    "accessTokenLifespan": 86_400, "ssoSessionMaxLifespan": SESSION_SECS}),
            ),
            (
                format!("/admin/realms/{REALM}/clients"),
                json!({"clientId": "app", "publicClient": false, "directAccessGrantsEnabled": true,
                    "serviceAccountsEnabled": true}),
            ),
            (
                format!("/admin/realms/{REALM}/users"),
                json!({"username": "alice", "enabled": true, "email": "alice@example.test",
                    "credentials": [{"type": "password", "value": password, "temporary": false}]}),
            ),
        ],
    )
    .await;
    let secret = client_secret(&http, &url, &admin, REALM, "app").await;
    let (status, tokens) = post_form(
        &http,
        &oidc(&url, REALM, "token"),
        &[
            ("grant_type", "password"),
            ("client_id", "app"),
            ("client_secret", &secret),
            ("username", "alice"),
            ("password", password),
        ],
    )
    .await;
    assert_eq!(status, 200, "password grant: {}", tokens["error"]);
    let jwks = json!({
        REALM: get_json(&oidc(&url, REALM, "certs")).await,
        "master": get_json(&oidc(&url, "master", "certs")).await,
    });
    server.stop();

    // The database as `tessera admin backup` writes it (compact, no WAL).
    std::fs::create_dir_all(&out).expect("mkdir");
    let db = out.join("tessera.db");
    ok(&tessera(
        &[
            "admin",
            "backup",
            db.to_str().expect("utf8"),
            "--data-dir",
            data.to_str().expect("utf8"),
        ],
        &[],
        None,
    ));
    std::fs::copy(data.join("master.key"), out.join("master.key")).expect("key");
    let fixture = json!({
        "about": "Written by tessera's write_release_fixture test (crates/cli/tests/upgrade.rs). \
                  Test-only secrets: the master key and every credential here protect nothing.",
        "tessera_version": env!("CARGO_PKG_VERSION"),
        "written_at_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
        "realm": REALM,
        "client_id": "app",
        "client_secret": secret,
        "username": "alice",
        "password": password,
        "admin_password": ADMIN_PW,
        "refresh_token": tokens["refresh_token"],
        "access_token": tokens["access_token"],
        "jwks": jwks,
    });
    std::fs::write(
        out.join("fixture.json"),
        serde_json::to_string_pretty(&fixture).expect("json") + "\n",
    )
    .expect("write fixture.json");
    println!("wrote {}", out.display());
}
