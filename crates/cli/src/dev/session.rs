//! Talking to the server for the developer commands: the password, refresh,
//! device and code grants, revocation and userinfo. What they return is
//! kept by the token cache (`cache.rs`).

use super::cache::Tokens;
use super::connections::Connection;
use super::CliError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// A server's answer that is an OAuth error.
struct OAuthFailure {
    error: String,
    description: String,
}

pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Result<Self, CliError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")))
            // Never re-send a password or refresh token to wherever a
            // redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CliError::other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    fn unreachable(conn: &Connection, e: &reqwest::Error) -> CliError {
        CliError::unreachable(format!("cannot reach {} ({}): {e}", conn.id, conn.url))
    }

    /// POSTs a form to an OIDC endpoint: the JSON body, or the OAuth error.
    async fn post(
        &self,
        conn: &Connection,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<Result<Value, OAuthFailure>, CliError> {
        let res = self
            .client
            .post(conn.endpoint(endpoint))
            .form(form)
            .send()
            .await
            .map_err(|e| Self::unreachable(conn, &e))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| Self::unreachable(conn, &e))?;
        if status.is_success() {
            return Ok(Ok(if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|_| {
                    CliError::other(format!(
                        "{} answered {status} with a body that is not JSON",
                        conn.id
                    ))
                })?
            }));
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match v["error"].as_str() {
            Some(error) => Ok(Err(OAuthFailure {
                error: error.to_string(),
                description: v["error_description"].as_str().unwrap_or("").to_string(),
            })),
            None if status.is_server_error() => Err(CliError::unreachable(format!(
                "{} is not answering properly (HTTP {status})",
                conn.id
            ))),
            None if status.as_u16() == 404 => Err(CliError::other(format!(
                "{} has no realm {:?} (HTTP 404)",
                conn.url, conn.realm
            ))),
            None => Err(CliError::other(format!(
                "{} answered HTTP {status}",
                conn.id
            ))),
        }
    }

    pub async fn password_grant(
        &self,
        conn: &Connection,
        username: &str,
        password: &str,
    ) -> Result<Tokens, CliError> {
        let r = self
            .post(
                conn,
                "token",
                &[
                    ("grant_type", "password"),
                    ("client_id", &conn.client_id),
                    ("username", username),
                    ("password", password),
                    ("scope", "openid"),
                ],
            )
            .await?;
        match r {
            Ok(v) => Tokens::from_response(&v),
            Err(f) if f.error == "invalid_grant" => Err(CliError::login_required(format!(
                "{} refused the stored credentials for {username}: {}",
                conn.id, f.description
            ))),
            Err(f) => Err(CliError::other(format!(
                "{}: {} ({})",
                conn.id, f.description, f.error
            ))),
        }
    }

    /// `Ok(None)` when the refresh token is no longer accepted.
    pub(super) async fn refresh(
        &self,
        conn: &Connection,
        rt: &str,
    ) -> Result<Option<Tokens>, CliError> {
        let r = self
            .post(
                conn,
                "token",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &conn.client_id),
                    ("refresh_token", rt),
                ],
            )
            .await?;
        match r {
            Ok(v) => {
                let mut t = Tokens::from_response(&v)?;
                // A server that does not rotate keeps the old token valid.
                if t.refresh_token.is_none() {
                    t.refresh_token = Some(rt.to_string());
                }
                Ok(Some(t))
            }
            Err(f) if f.error == "invalid_grant" => Ok(None),
            Err(f) => Err(CliError::other(format!(
                "{}: {} ({})",
                conn.id, f.description, f.error
            ))),
        }
    }

    pub async fn userinfo(&self, conn: &Connection, access: &str) -> Result<Value, CliError> {
        let res = self
            .client
            .get(conn.endpoint("userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .map_err(|e| Self::unreachable(conn, &e))?;
        if res.status().as_u16() == 401 {
            return Err(CliError::login_required(format!(
                "{} no longer accepts this sign-in: run `tessera login --conn {}`",
                conn.id, conn.id
            )));
        }
        if res.status().is_server_error() {
            return Err(CliError::unreachable(format!(
                "{} is not answering properly (HTTP {})",
                conn.id,
                res.status()
            )));
        }
        if !res.status().is_success() {
            return Err(CliError::other(format!(
                "userinfo answered HTTP {}",
                res.status()
            )));
        }
        let text = res.text().await.map_err(|e| Self::unreachable(conn, &e))?;
        serde_json::from_str(&text)
            .map_err(|_| CliError::other(format!("{}'s userinfo answer is not JSON", conn.id)))
    }

    /// RFC 8628: prints the code, opens the browser when it can, and polls
    /// (honouring `interval` and `slow_down`) with a spinner on a terminal.
    pub async fn device_login(&self, conn: &Connection, open: bool) -> Result<Tokens, CliError> {
        let start = match self
            .post(
                conn,
                "auth/device",
                &[("client_id", &conn.client_id), ("scope", "openid")],
            )
            .await?
        {
            Ok(v) => v,
            Err(f) => {
                return Err(CliError::other(format!(
                    "{} cannot start a device login: {} ({})",
                    conn.id, f.description, f.error
                )))
            }
        };
        let field = |k: &str| start[k].as_str().unwrap_or_default().to_string();
        let (device_code, user_code) = (field("device_code"), field("user_code"));
        let complete = Some(field("verification_uri_complete"))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| field("verification_uri"));
        let mut interval = start["interval"].as_u64().unwrap_or(5).max(1);
        let deadline = std::time::Instant::now()
            + Duration::from_secs(start["expires_in"].as_u64().unwrap_or(600));
        eprintln!(
            "To sign in, open {} and enter the code {user_code}",
            field("verification_uri")
        );
        eprintln!("(or open {complete})");
        if open {
            open_browser(&complete);
        }
        let mut spinner = Spinner::new("Waiting for you to approve the sign-in");
        loop {
            spinner.wait(Duration::from_secs(interval)).await;
            if std::time::Instant::now() > deadline {
                spinner.done();
                return Err(CliError::login_required(
                    "the code expired: run `tessera login` again",
                ));
            }
            let r = self
                .post(
                    conn,
                    "token",
                    &[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                        ("client_id", &conn.client_id),
                        ("device_code", &device_code),
                    ],
                )
                .await;
            match r {
                Ok(Ok(v)) => {
                    spinner.done();
                    return Tokens::from_response(&v);
                }
                Ok(Err(f)) => match f.error.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => interval += 5,
                    "access_denied" => {
                        spinner.done();
                        return Err(CliError::login_required(
                            "the sign-in was denied in the browser",
                        ));
                    }
                    "expired_token" => {
                        spinner.done();
                        return Err(CliError::login_required(
                            "the code expired: run `tessera login` again",
                        ));
                    }
                    _ => {
                        spinner.done();
                        return Err(CliError::other(format!(
                            "{}: {} ({})",
                            conn.id, f.description, f.error
                        )));
                    }
                },
                Err(e) => {
                    spinner.done();
                    return Err(e);
                }
            }
        }
    }

    /// Code + PKCE with a loopback redirect (RFC 8252): the client must have
    /// `http://127.0.0.1/callback` registered (any port is accepted).
    /// `port` fixes the loopback port (e.g. one forwarded over SSH).
    pub async fn browser_login(
        &self,
        conn: &Connection,
        open: bool,
        port: Option<u16>,
    ) -> Result<Tokens, CliError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .map_err(|e| {
                CliError::other(format!(
                    "cannot listen on 127.0.0.1:{}: {e}",
                    port.unwrap_or(0)
                ))
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| CliError::other(e.to_string()))?
            .port();
        let redirect = format!("http://127.0.0.1:{port}/callback");
        let verifier = random_b64(32);
        let challenge =
            URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
        let state = random_b64(16);
        let mut url = url::Url::parse(&conn.endpoint("auth"))
            .map_err(|_| CliError::usage("the connection's URL is not valid"))?;
        url.query_pairs_mut()
            .append_pair("client_id", &conn.client_id)
            .append_pair("redirect_uri", &redirect)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid")
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        eprintln!("To sign in, open {url}");
        if open {
            open_browser(url.as_str());
        }
        let mut spinner = Spinner::new("Waiting for the browser");
        let accept = async {
            loop {
                let (mut sock, _) = listener.accept().await?;
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await?;
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let query: Option<std::collections::HashMap<String, String>> =
                    (target == "/callback" || target.starts_with("/callback?")).then(|| {
                        url::Url::parse(&format!("http://127.0.0.1{target}"))
                            .map(|u| u.query_pairs().into_owned().collect())
                            .unwrap_or_default()
                    });
                // Only the browser we sent knows the state: any other
                // request (another local process on a known --port) is
                // refused and the wait goes on.
                let Some(q) = query.filter(|q| q.get("state") == Some(&state)) else {
                    sock.write_all(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await?;
                    continue;
                };
                let page = "<!DOCTYPE html><title>Tessera</title><p>You can close this window and return to the terminal.</p>";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                sock.write_all(reply.as_bytes()).await?;
                return Ok::<_, std::io::Error>(q);
            }
        };
        let q = tokio::time::timeout(Duration::from_secs(300), accept)
            .await
            .map_err(|_| {
                spinner.done();
                CliError::login_required("no answer from the browser within 5 minutes")
            })?
            .map_err(|e| CliError::other(format!("loopback listener: {e}")))?;
        spinner.done();
        if let Some(e) = q.get("error") {
            return Err(CliError::login_required(format!(
                "the sign-in failed: {} ({e})",
                q.get("error_description").map(String::as_str).unwrap_or("")
            )));
        }
        let code = q
            .get("code")
            .ok_or_else(|| CliError::other("the browser's answer has no code"))?;
        match self
            .post(
                conn,
                "token",
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", &conn.client_id),
                    ("code", code),
                    ("redirect_uri", &redirect),
                    ("code_verifier", &verifier),
                ],
            )
            .await?
        {
            Ok(v) => Tokens::from_response(&v),
            Err(f) => Err(CliError::other(format!(
                "{}: {} ({})",
                conn.id, f.description, f.error
            ))),
        }
    }

    /// RFC 7009. Returns whether the server took it.
    pub(super) async fn revoke(&self, conn: &Connection, rt: &str) -> Result<bool, CliError> {
        let r = self
            .post(
                conn,
                "revoke",
                &[
                    ("client_id", &conn.client_id),
                    ("token", rt),
                    ("token_type_hint", "refresh_token"),
                ],
            )
            .await?;
        Ok(r.is_ok())
    }
}

fn random_b64(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // No randomness: never fall back to a predictable verifier or state.
        std::process::abort();
    }
    URL_SAFE_NO_PAD.encode(b)
}

/// Why a browser on this machine cannot show the sign-in page, if it
/// cannot: the session is remote (SSH), or (on Linux and the BSDs) there is
/// no graphical display.
pub fn no_display() -> Option<&'static str> {
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    if set("SSH_CONNECTION") || set("SSH_TTY") {
        return Some("this is a remote (SSH) session");
    }
    let desktop_os = cfg!(any(target_os = "macos", target_os = "windows"));
    if !desktop_os && !set("DISPLAY") && !set("WAYLAND_DISPLAY") {
        return Some("there is no display");
    }
    None
}

/// Opens a URL in the user's browser, if there is a way to; silently does
/// nothing otherwise (the URL was printed).
fn open_browser(url: &str) {
    // Only web addresses: the URL comes from the server.
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return;
    }
    let cmd = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            return;
        }
        "xdg-open"
    };
    let _ = std::process::Command::new(cmd)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// A spinner on stderr while waiting, only when stderr is a terminal.
struct Spinner {
    label: &'static str,
    tty: bool,
    frame: usize,
}

impl Spinner {
    fn new(label: &'static str) -> Self {
        Self {
            label,
            tty: std::io::stderr().is_terminal(),
            frame: 0,
        }
    }

    async fn wait(&mut self, total: Duration) {
        if !self.tty {
            tokio::time::sleep(total).await;
            return;
        }
        const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
        let step = Duration::from_millis(100);
        let mut left = total;
        while !left.is_zero() {
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\r{} {}… ",
                FRAMES[self.frame % FRAMES.len()],
                self.label
            );
            let _ = err.flush();
            self.frame += 1;
            let d = step.min(left);
            tokio::time::sleep(d).await;
            left -= d;
        }
    }

    fn done(&mut self) {
        if self.tty {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.tty = false;
        }
    }
}
