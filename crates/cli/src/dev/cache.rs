//! The token cache in the keychain that `sectoken get` serves from: the
//! cached access token while it is fresh, else a refresh (the rotated token
//! is stored at once), else a sign-in with the stored password. One process
//! at a time per connection (a file lock), so concurrent callers never
//! spend the same refresh token twice; secrets are bound to the issuer and
//! client they were issued by.

use super::connections::{create_private_dir, Connection};
use super::keychain::Keychain;
use super::session::Http;
use super::CliError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub const PASSWORD_KEY: &str = "password";

pub const USERNAME_KEY: &str = "username";

const TOKENS_KEY: &str = "tokens";

const BINDING_KEY: &str = "binding";

/// An access token with less than this left is refreshed first.
pub const MARGIN_SECS: i64 = 30;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Tokens as cached in the keychain, with absolute expiry times.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub expires_at: i64,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub refresh_expires_at: Option<i64>,
    pub token_type: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub session_state: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
}

impl Tokens {
    pub(super) fn from_response(v: &Value) -> Result<Self, CliError> {
        let bad = || CliError::other("the server's token response is not valid");
        let now = now();
        let refresh_in = v["refresh_expires_in"].as_i64().unwrap_or(0);
        Ok(Self {
            access_token: v["access_token"].as_str().ok_or_else(bad)?.to_string(),
            expires_at: now + v["expires_in"].as_i64().ok_or_else(bad)?,
            refresh_token: v["refresh_token"].as_str().map(str::to_string),
            // Keycloak says 0 for "no expiry" (offline tokens).
            refresh_expires_at: (refresh_in > 0).then_some(now + refresh_in),
            token_type: v["token_type"].as_str().unwrap_or("Bearer").to_string(),
            scope: v["scope"].as_str().map(str::to_string),
            session_state: v["session_state"].as_str().map(str::to_string),
            id_token: v["id_token"].as_str().map(str::to_string),
        })
    }

    fn access_fresh(&self) -> bool {
        self.expires_at - now() > MARGIN_SECS
    }

    fn refresh_usable(&self) -> Option<&str> {
        let alive = self.refresh_expires_at.is_none_or(|t| t > now() + 5);
        self.refresh_token.as_deref().filter(|_| alive)
    }

    /// `preferred_username` from the access token's claims.
    pub fn username(&self) -> Option<String> {
        let payload = self.access_token.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        v["preferred_username"].as_str().map(str::to_string)
    }

    /// What `sectoken get` prints: Keycloak's token response, with the
    /// lifetimes counted from now.
    pub fn for_ide(&self) -> Value {
        let mut v = json!({
            "access_token": self.access_token,
            "expires_in": (self.expires_at - now()).max(0),
            "token_type": self.token_type,
        });
        if let Some(rt) = &self.refresh_token {
            v["refresh_token"] = json!(rt);
            v["refresh_expires_in"] = json!(self
                .refresh_expires_at
                .map(|t| (t - now()).max(0))
                .unwrap_or(0));
        }
        for (k, val) in [
            ("scope", &self.scope),
            ("session_state", &self.session_state),
        ] {
            if let Some(x) = val {
                v[k] = json!(x);
            }
        }
        v
    }
}

pub fn save(k: &dyn Keychain, conn: &Connection, t: &Tokens) -> Result<(), CliError> {
    let json = serde_json::to_string(t).map_err(|e| CliError::other(e.to_string()))?;
    k.set(&conn.service(), TOKENS_KEY, &json)
}

fn load(k: &dyn Keychain, conn: &Connection) -> Result<Option<Tokens>, CliError> {
    Ok(k.get(&conn.service(), TOKENS_KEY)?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// Stores tokens that were just issued. If that fails the spent refresh
/// token must not stay behind (using it again would end the session), so
/// the cached tokens are dropped; the caller still gets the fresh ones.
fn keep(k: &dyn Keychain, conn: &Connection, t: &Tokens) {
    if let Err(e) = save(k, conn, t) {
        eprintln!(
            "warning: could not store the new tokens ({}); the next call signs in again",
            e.message
        );
        let _ = k.delete(&conn.service(), TOKENS_KEY);
    }
}

/// What the stored secrets belong to: the issuer and client they were
/// issued by and for.
fn binding(conn: &Connection) -> String {
    format!("{} {}", conn.issuer(), conn.client_id)
}

/// Forgets the connection's secrets if they were stored for another server
/// or client (a connection removed and added again under the same id), and
/// records what they are for now.
pub fn bind(k: &dyn Keychain, conn: &Connection) -> Result<(), CliError> {
    let want = binding(conn);
    let have = k.get(&conn.service(), BINDING_KEY)?;
    if have.as_deref() != Some(want.as_str()) {
        if have.is_some() {
            forget(k, conn)?;
        }
        k.set(&conn.service(), BINDING_KEY, &want)?;
    }
    Ok(())
}

/// Forgets everything the keychain holds for a connection.
pub fn forget(k: &dyn Keychain, conn: &Connection) -> Result<(), CliError> {
    for key in [TOKENS_KEY, PASSWORD_KEY, USERNAME_KEY, BINDING_KEY] {
        k.delete(&conn.service(), key)?;
    }
    Ok(())
}

/// Holds the connection's lock file for as long as it lives.
pub(super) struct Lock(#[allow(dead_code)] std::fs::File);

pub(super) fn lock(dir: &Path, conn: &Connection) -> Result<Lock, CliError> {
    let locks = dir.join("locks");
    create_private_dir(&locks)?;
    let path = locks.join(format!("{}.lock", conn.id.to_lowercase()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::other(format!("cannot open {}: {e}", path.display())))?;
    f.lock()
        .map_err(|e| CliError::other(format!("cannot lock {}: {e}", path.display())))?;
    Ok(Lock(f))
}

/// A valid access token for the connection: the cached one while it has
/// more than a margin left, else a refresh (the rotated token is stored),
/// else a sign-in with the stored password, else "log in". One process at
/// a time per connection.
pub async fn valid_tokens(
    http: &Http,
    k: &dyn Keychain,
    conn: &Connection,
    dir: &Path,
) -> Result<Tokens, CliError> {
    let _lock = tokio::task::block_in_place(|| lock(dir, conn))?;
    bind(k, conn)?;
    let cached = load(k, conn)?;
    if let Some(t) = cached.as_ref().filter(|t| t.access_fresh()) {
        return Ok(t.clone());
    }
    if let Some(rt) = cached.as_ref().and_then(Tokens::refresh_usable) {
        if let Some(fresh) = http.refresh(conn, rt).await? {
            keep(k, conn, &fresh);
            return Ok(fresh);
        }
    }
    let password = k.get(&conn.service(), PASSWORD_KEY)?;
    let username = k
        .get(&conn.service(), USERNAME_KEY)?
        .or(conn.username.clone());
    if let (Some(p), Some(u)) = (password, username) {
        let fresh = http.password_grant(conn, &u, &p).await?;
        keep(k, conn, &fresh);
        return Ok(fresh);
    }
    Err(CliError::login_required(format!(
        "not signed in to {}: run `tessera login --conn {}`",
        conn.id, conn.id
    )))
}

/// Revokes the stored refresh token, if any. Returns whether one was revoked.
pub async fn logout(http: &Http, k: &dyn Keychain, conn: &Connection) -> Result<bool, CliError> {
    match load(k, conn)?.and_then(|t| t.refresh_token) {
        Some(rt) => http.revoke(conn, &rt).await,
        None => Ok(false),
    }
}

/// git was refused `access` (`tessera credential erase`): if it is the
/// cached access token, it is dropped, so the next call refreshes instead
/// of handing out the same token again. The refresh token and a stored
/// password stay: one refused request is no reason to sign out (though
/// without either, the next call must sign in again).
pub fn discard_access(k: &dyn Keychain, conn: &Connection, access: &str) -> Result<(), CliError> {
    match load(k, conn)? {
        Some(mut t) if t.access_token == access => {
            t.expires_at = 0;
            save(k, conn, &t)
        }
        _ => Ok(()),
    }
}
