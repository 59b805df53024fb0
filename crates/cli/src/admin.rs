//! `tessera admin`: realms, clients, users, sessions and signing keys; and,
//! on the database itself, `gc`, `backup` and `restore`.
//! Every command is an Admin REST call. With `--server URL` it goes over HTTP
//! with an admin token; without it, it runs in-process through the very same
//! router on the local data directory (as the trusted local operator), so
//! both modes share one implementation and one set of rules.

use crate::serve;
use crate::{backup, ConfigArgs};
use anyhow::{anyhow, bail, Context};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use tower::ServiceExt;

#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// Talk to a running server at this URL instead of the local data directory.
    #[arg(long, env = "TESSERA_SERVER", global = true)]
    server: Option<String>,
    /// Admin user in the master realm (remote mode). Not `--username`: the
    /// user commands take that for the user they act on.
    #[arg(long, default_value = "admin", global = true)]
    admin_user: String,
    /// Read the admin password from stdin (remote mode); else TESSERA_ADMIN_PASSWORD.
    #[arg(long, global = true)]
    admin_password_stdin: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    #[command(subcommand)]
    Realms(RealmCmd),
    #[command(subcommand)]
    Clients(ClientCmd),
    #[command(subcommand)]
    Users(UserCmd),
    #[command(subcommand)]
    Sessions(SessionCmd),
    #[command(subcommand)]
    Keys(KeyCmd),
    /// Garbage-collect expired refresh tokens, sessions, consent challenges and codes
    /// once (the server also does this on a schedule). Works on the database
    /// directly: the data directory or --database-url.
    Gc,
    /// Copy the SQLite database to FILE (a new file, mode 0600) while the server
    /// runs. The copy does not contain the master key: keep that apart.
    Backup { file: PathBuf },
    /// Replace the SQLite database with FILE, a backup; the server must be
    /// stopped. Needs the master key the backup was taken with.
    Restore {
        file: PathBuf,
        /// Replace an existing database.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum RealmCmd {
    List,
    Show {
        name: String,
    },
    Create {
        name: String,
        /// RS256 (default), ES256 or EdDSA.
        #[arg(long)]
        alg: Option<String>,
    },
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
enum ClientCmd {
    List {
        #[arg(long)]
        realm: String,
    },
    Create {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        client_id: String,
        /// A public client (no secret).
        #[arg(long)]
        public: bool,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Allow the client_credentials grant.
        #[arg(long)]
        service_accounts: bool,
        /// Allow the password grant.
        #[arg(long)]
        direct_access: bool,
    },
    Delete {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        client_id: String,
    },
    /// Show the client secret; `--regenerate` replaces it first.
    Secret {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        regenerate: bool,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    List {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        search: Option<String>,
    },
    Create {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// Read the new user's password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    Delete {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        username: String,
    },
    /// Set a password, read from stdin.
    SetPassword {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        temporary: bool,
    },
}

#[derive(Subcommand)]
enum SessionCmd {
    /// A user's active sessions.
    List {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        username: String,
    },
    /// End one session.
    Revoke {
        #[arg(long)]
        realm: String,
        session_id: String,
    },
    /// End every session of a user.
    Logout {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    List {
        #[arg(long)]
        realm: String,
    },
    /// New key signs from now on; the old one stays published until its tokens expire.
    Rotate {
        #[arg(long)]
        realm: String,
    },
}

enum Transport {
    Remote {
        http: reqwest::Client,
        base: String,
        token: String,
    },
    Local {
        router: axum::Router,
    },
}

impl Transport {
    async fn connect(args: &AdminArgs) -> anyhow::Result<Self> {
        if let Some(base) = &args.server {
            let base = base.trim_end_matches('/').to_string();
            let password = if args.admin_password_stdin {
                read_stdin_line()?
            } else {
                std::env::var("TESSERA_ADMIN_PASSWORD").map_err(|_| {
                    anyhow!("set TESSERA_ADMIN_PASSWORD or pass --admin-password-stdin")
                })?
            };
            let http = reqwest::Client::new();
            let res = http
                .post(format!(
                    "{base}/realms/master/protocol/openid-connect/token"
                ))
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", "admin-cli"),
                    ("username", &args.admin_user),
                    ("password", &password),
                ])
                .send()
                .await
                .with_context(|| format!("cannot reach {base}"))?;
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("admin login failed: {}", describe(status, &body));
            }
            let token = body["access_token"]
                .as_str()
                .ok_or_else(|| anyhow!("no access_token in login response"))?
                .to_string();
            return Ok(Self::Remote { http, base, token });
        }
        let cfg = serve::resolve(&args.cfg)?;
        let store = serve::open_store(&cfg, false).await?.store;
        let master = serve::master_key(&cfg)?;
        let public_url = cfg
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", cfg.listen));
        let state = serve::state(&cfg, store, master, &public_url)?;
        let router = tessera_http::app(state).layer(axum::Extension(tessera_http::LocalOperator));
        Ok(Self::Local { router })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, text) = match self {
            Self::Remote { http, base, token } => {
                let mut req = http
                    .request(method, format!("{base}{path}"))
                    .bearer_auth(token);
                if let Some(b) = &body {
                    req = req.json(b);
                }
                let res = req
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {base}"))?;
                let status = StatusCode::from_u16(res.status().as_u16())?;
                (status, res.text().await.unwrap_or_default())
            }
            Self::Local { router } => {
                let mut req = Request::builder().method(method).uri(path);
                let body = match &body {
                    Some(b) => {
                        req = req.header("content-type", "application/json");
                        Body::from(serde_json::to_vec(b)?)
                    }
                    None => Body::empty(),
                };
                let res = router.clone().oneshot(req.body(body)?).await?;
                let status = res.status();
                let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
                (status, String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            bail!("{}", describe(status, &value));
        }
        Ok(value)
    }

    async fn client_uuid(&self, realm: &str, client_id: &str) -> anyhow::Result<String> {
        let list = self
            .call(
                Method::GET,
                &format!(
                    "/admin/realms/{}/clients?clientId={}",
                    seg(realm),
                    seg(client_id)
                ),
                None,
            )
            .await?;
        list.as_array()
            .and_then(|a| a.first())
            .and_then(|c| c["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no client {client_id} in realm {realm}"))
    }

    async fn user_uuid(&self, realm: &str, username: &str) -> anyhow::Result<String> {
        let list = self
            .call(
                Method::GET,
                &format!(
                    "/admin/realms/{}/users?username={}&exact=true",
                    seg(realm),
                    seg(username)
                ),
                None,
            )
            .await?;
        list.as_array()
            .and_then(|a| a.first())
            .and_then(|u| u["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no user {username} in realm {realm}"))
    }
}

/// One line from an error response: Keycloak's `errorMessage`, OAuth's
/// `error_description`/`error`, or Che's `message`.
pub(crate) fn describe(status: StatusCode, body: &Value) -> String {
    let msg = body["errorMessage"]
        .as_str()
        .or_else(|| body["error_description"].as_str())
        .or_else(|| body["message"].as_str())
        .or_else(|| body["error"].as_str())
        .unwrap_or("request failed");
    format!("{msg} (HTTP {})", status.as_u16())
}

/// Percent-encodes one path or query segment.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read stdin")?;
    let line = s.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        bail!("expected a password on stdin");
    }
    Ok(line)
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    match &args.command {
        AdminCommand::Gc => return gc(&args).await,
        AdminCommand::Backup { file } => {
            return backup::backup(&on_database(&args, "backup")?, file).await
        }
        AdminCommand::Restore { file, force } => {
            return backup::restore(&on_database(&args, "restore")?, file, *force).await
        }
        _ => {}
    }
    let t = Transport::connect(&args).await?;
    let r = |realm: &str| format!("/admin/realms/{}", seg(realm));
    match args.command {
        // Handled before connecting: they need no server.
        AdminCommand::Gc | AdminCommand::Backup { .. } | AdminCommand::Restore { .. } => {}
        AdminCommand::Realms(cmd) => match cmd {
            RealmCmd::List => print(&t.call(Method::GET, "/admin/realms", None).await?),
            RealmCmd::Show { name } => print(&t.call(Method::GET, &r(&name), None).await?),
            RealmCmd::Create { name, alg } => {
                let mut body = json!({"realm": name, "enabled": true});
                if let Some(alg) = alg {
                    body["defaultSignatureAlgorithm"] = json!(alg);
                }
                t.call(Method::POST, "/admin/realms", Some(body)).await?;
                println!("created realm {name}");
            }
            RealmCmd::Delete { name } => {
                t.call(Method::DELETE, &r(&name), None).await?;
                println!("deleted realm {name}");
            }
        },
        AdminCommand::Clients(cmd) => match cmd {
            ClientCmd::List { realm } => print(
                &t.call(Method::GET, &format!("{}/clients", r(&realm)), None)
                    .await?,
            ),
            ClientCmd::Create {
                realm,
                client_id,
                public,
                redirect_uris,
                service_accounts,
                direct_access,
            } => {
                let body = json!({
                    "clientId": client_id, "publicClient": public, "redirectUris": redirect_uris,
                    "serviceAccountsEnabled": service_accounts, "directAccessGrantsEnabled": direct_access,
                });
                t.call(Method::POST, &format!("{}/clients", r(&realm)), Some(body))
                    .await?;
                let id = t.client_uuid(&realm, &client_id).await?;
                print(
                    &t.call(Method::GET, &format!("{}/clients/{id}", r(&realm)), None)
                        .await?,
                );
            }
            ClientCmd::Delete { realm, client_id } => {
                let id = t.client_uuid(&realm, &client_id).await?;
                t.call(Method::DELETE, &format!("{}/clients/{id}", r(&realm)), None)
                    .await?;
                println!("deleted client {client_id}");
            }
            ClientCmd::Secret {
                realm,
                client_id,
                regenerate,
            } => {
                let id = t.client_uuid(&realm, &client_id).await?;
                let method = if regenerate {
                    Method::POST
                } else {
                    Method::GET
                };
                let v = t
                    .call(
                        method,
                        &format!("{}/clients/{id}/client-secret", r(&realm)),
                        None,
                    )
                    .await?;
                match v["value"].as_str() {
                    Some(s) => println!("{s}"),
                    None => bail!("the secret was set by an administrator and is stored only as a hash; use --regenerate for a new one"),
                }
            }
        },
        AdminCommand::Users(cmd) => match cmd {
            UserCmd::List { realm, search } => {
                let q = search
                    .map(|s| format!("?search={}", seg(&s)))
                    .unwrap_or_default();
                print(
                    &t.call(Method::GET, &format!("{}/users{q}", r(&realm)), None)
                        .await?,
                );
            }
            UserCmd::Create {
                realm,
                username,
                email,
                password_stdin,
            } => {
                let mut body = json!({"username": username, "enabled": true, "email": email});
                if password_stdin {
                    body["credentials"] = json!([{"type": "password", "value": read_stdin_line()?, "temporary": false}]);
                }
                t.call(Method::POST, &format!("{}/users", r(&realm)), Some(body))
                    .await?;
                println!("created user {username}");
            }
            UserCmd::Delete { realm, username } => {
                let id = t.user_uuid(&realm, &username).await?;
                t.call(Method::DELETE, &format!("{}/users/{id}", r(&realm)), None)
                    .await?;
                println!("deleted user {username}");
            }
            UserCmd::SetPassword {
                realm,
                username,
                temporary,
            } => {
                let id = t.user_uuid(&realm, &username).await?;
                let body = json!({"type": "password", "value": read_stdin_line()?, "temporary": temporary});
                t.call(
                    Method::PUT,
                    &format!("{}/users/{id}/reset-password", r(&realm)),
                    Some(body),
                )
                .await?;
                println!("password of {username} changed");
            }
        },
        AdminCommand::Sessions(cmd) => match cmd {
            SessionCmd::List { realm, username } => {
                let id = t.user_uuid(&realm, &username).await?;
                print(
                    &t.call(
                        Method::GET,
                        &format!("{}/users/{id}/sessions", r(&realm)),
                        None,
                    )
                    .await?,
                );
            }
            SessionCmd::Revoke { realm, session_id } => {
                t.call(
                    Method::DELETE,
                    &format!("{}/sessions/{}", r(&realm), seg(&session_id)),
                    None,
                )
                .await?;
                println!("revoked session {session_id}");
            }
            SessionCmd::Logout { realm, username } => {
                let id = t.user_uuid(&realm, &username).await?;
                t.call(
                    Method::POST,
                    &format!("{}/users/{id}/logout", r(&realm)),
                    None,
                )
                .await?;
                println!("ended every session of {username}");
            }
        },
        AdminCommand::Keys(cmd) => match cmd {
            KeyCmd::List { realm } => print(
                &t.call(Method::GET, &format!("{}/keys", r(&realm)), None)
                    .await?,
            ),
            KeyCmd::Rotate { realm } => {
                let v = t
                    .call(Method::POST, &format!("{}/keys/rotate", r(&realm)), None)
                    .await?;
                print(&v["active"]);
            }
        },
    }
    Ok(())
}

/// The configuration of a command that works on the database itself.
fn on_database(args: &AdminArgs, command: &str) -> anyhow::Result<crate::config::Config> {
    if args.server.is_some() {
        bail!("admin {command} works on the database, not through a server: run it with the server's --data-dir or --database-url");
    }
    serve::resolve(&args.cfg)
}

async fn gc(args: &AdminArgs) -> anyhow::Result<()> {
    let cfg = on_database(args, "gc")?;
    let store = serve::open_store(&cfg, false).await?.store;
    let done =
        tessera_oauth::gc::collect_garbage(store.as_ref(), tessera_core::time::now_ms(), cfg.gc())
            .await?;
    println!(
        "removed {} refresh tokens, {} sessions, {} consent challenges, {} codes, {} browser sessions",
        done.refresh_tokens, done.sessions, done.challenges, done.codes, done.sso_sessions
    );
    Ok(())
}
