//! Credential helpers, so developer tools use a connection's tokens with no
//! glue code:
//!
//! - git: `tessera credential --conn X get|store|erase` speaks git's
//!   credential helper protocol (`git config credential.https://host.helper
//!   "!tessera credential --conn X"`: a helper without `!` or an absolute
//!   path would be run as `git credential-...`). `get` answers a fresh access token as
//!   the password; `erase` (git's "that password was refused") drops the
//!   cached access token so the next `get` refreshes; `store` has nothing
//!   to keep.
//! - kubectl: `sectoken get --output exec-credential` prints an
//!   ExecCredential for a kubeconfig `exec` entry, in the API version that
//!   `KUBERNETES_EXEC_INFO` names.

use super::{cache, session, CliError, Common};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::io::{BufRead, Write};

/// git's credential helper operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Operation {
    Get,
    Store,
    Erase,
}

#[derive(Args, Debug)]
pub struct CredentialArgs {
    /// The connection whose tokens git uses.
    #[arg(long)]
    pub conn: String,
    /// What git asks (it appends this itself).
    #[arg(value_enum)]
    pub operation: Operation,
    #[command(flatten)]
    pub common: Common,
}

/// What git tells a helper: `key=value` lines up to a blank line or EOF.
fn read_request(input: impl BufRead) -> Result<Vec<(String, String)>, CliError> {
    let mut attrs = Vec::new();
    for line in input.lines() {
        let line = line.map_err(|e| CliError::other(format!("cannot read stdin: {e}")))?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once('=') {
            attrs.push((k.to_string(), v.to_string()));
        }
    }
    Ok(attrs)
}

fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Whether git's `host` (host[:port]) is exactly this machine: `localhost`,
/// `127.0.0.1` or `[::1]`, with at most a numeric port.
fn is_loopback(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        // A colon inside `[::1]` is not a port's.
        Some((name, port)) if !port.ends_with(']') => (name, Some(port)),
        _ => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && (name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]")
}

/// A token may go to an https server, or over plain http to this machine
/// only (a test server, a port forward): never in clear over a network.
fn may_send_to(protocol: Option<&str>, host: Option<&str>) -> Result<(), CliError> {
    match protocol {
        Some("https") => Ok(()),
        Some("http") if host.is_some_and(is_loopback) => Ok(()),
        Some("http") => Err(CliError::usage(format!(
            "not sending a token over plain http to {}",
            host.unwrap_or("?")
        ))),
        other => Err(CliError::usage(format!(
            "tokens go over https only, not {}",
            other.unwrap_or("an unnamed protocol")
        ))),
    }
}

pub async fn credential(args: CredentialArgs) -> Result<(), CliError> {
    let c = &args.common;
    let request = read_request(std::io::stdin().lock())?;
    if args.operation == Operation::Store {
        return Ok(());
    }
    let conn = c.connections()?.get(&args.conn)?.clone();
    let (keychain, _) = c.keychain(Some(&conn))?;
    let dir = c.dir()?;
    match args.operation {
        Operation::Get => {
            may_send_to(attr(&request, "protocol"), attr(&request, "host"))?;
            let http = session::Http::new()?;
            let tokens = cache::valid_tokens(&http, keychain.as_ref(), &conn, &dir).await?;
            // The server reads the token, not the name: keep git's, else
            // the user's. A line break in it would add attributes to the
            // answer, so such a name is not used.
            let username = attr(&request, "username")
                .map(str::to_string)
                .or_else(|| tokens.username())
                .filter(|u| !u.contains(['\n', '\r', '\0']))
                .unwrap_or_else(|| "tessera".to_string());
            let mut out = std::io::stdout().lock();
            writeln!(out, "username={username}")
                .and_then(|()| writeln!(out, "password={}", tokens.access_token))
                .and_then(|()| writeln!(out, "password_expiry_utc={}", tokens.expires_at))
                .map_err(|e| CliError::other(format!("cannot write to stdout: {e}")))
        }
        Operation::Erase => match attr(&request, "password") {
            Some(refused) => {
                let _lock = tokio::task::block_in_place(|| cache::lock(&dir, &conn))?;
                cache::discard_access(keychain.as_ref(), &conn, refused)
            }
            None => Ok(()),
        },
        Operation::Store => Ok(()),
    }
}

/// The exec credential API versions kubectl speaks.
const EXEC_V1: &str = "client.authentication.k8s.io/v1";
const EXEC_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// The API version kubectl asks for in `KUBERNETES_EXEC_INFO` (v1beta1,
/// kubelogin's default, when it is not set).
pub fn exec_api_version() -> Result<&'static str, CliError> {
    let Some(info) = std::env::var_os("KUBERNETES_EXEC_INFO") else {
        return Ok(EXEC_V1BETA1);
    };
    let info: Value = serde_json::from_str(&info.to_string_lossy())
        .map_err(|_| CliError::usage("KUBERNETES_EXEC_INFO is not JSON"))?;
    match info["apiVersion"].as_str() {
        Some(EXEC_V1) => Ok(EXEC_V1),
        Some(EXEC_V1BETA1) => Ok(EXEC_V1BETA1),
        other => Err(CliError::usage(format!(
            "KUBERNETES_EXEC_INFO asks for {}; this speaks {EXEC_V1} and {EXEC_V1BETA1}",
            other.unwrap_or("no apiVersion")
        ))),
    }
}

/// An ExecCredential carrying the access token until `sectoken get` would
/// stop handing it out (its expiry less the refresh margin).
pub fn exec_credential(api_version: &str, tokens: &cache::Tokens) -> Value {
    let expires = time::OffsetDateTime::from_unix_timestamp(tokens.expires_at - cache::MARGIN_SECS)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    let mut status = json!({"token": tokens.access_token});
    if let Some(at) = expires {
        status["expirationTimestamp"] = json!(at);
    }
    json!({
        "kind": "ExecCredential",
        "apiVersion": api_version,
        "spec": {"interactive": false},
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_git_requests() {
        let input = b"protocol=https\nhost=git.example:8443\npath=team/repo.git\n\nignored=1\n";
        let attrs = read_request(&input[..]).expect("parse");
        assert_eq!(attr(&attrs, "protocol"), Some("https"));
        assert_eq!(attr(&attrs, "host"), Some("git.example:8443"));
        assert_eq!(attr(&attrs, "ignored"), None);
    }

    #[test]
    fn tokens_never_cross_a_network_in_clear() {
        assert!(may_send_to(Some("https"), Some("git.example")).is_ok());
        for host in [
            "127.0.0.1:9000",
            "localhost",
            "LOCALHOST:8080",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(may_send_to(Some("http"), Some(host)).is_ok(), "{host}");
        }
        for host in [
            "git.example",
            "10.0.0.1:80",
            "localhost.evil.example",
            "[::2]:80",
            "localhost:80@evil.example",
            "127.0.0.1:evil.example",
            "[::1].evil.example",
            "[::1]@evil",
            "127.0.0.1.evil.com",
            "::1",
            "localhost:",
            "localhost:123456",
        ] {
            assert!(may_send_to(Some("http"), Some(host)).is_err(), "{host}");
        }
        assert!(may_send_to(Some("ssh"), Some("git.example")).is_err());
        assert!(may_send_to(None, None).is_err());
    }
}
