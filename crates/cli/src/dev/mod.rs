//! The developer commands (Codewind's `cwctl` for IDEs): connections,
//! `login`, `sectoken get`, `secstore`, `logout`, `whoami`, the git and
//! kubectl credential helpers and shell completions. Errors are one line on
//! stderr with a documented exit code.

mod cache;
pub mod connections;
mod helpers;
pub mod keychain;
mod session;

pub use helpers::{credential, CredentialArgs};

use clap::{Args, Subcommand, ValueEnum};
use connections::{Connection, Connections};
use keychain::Backend;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Exit codes of the developer commands (also in the README).
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything else that went wrong (bad server answer, I/O).
    pub const FAILURE: u8 = 1;
    /// Bad arguments or an unknown connection.
    pub const USAGE: u8 = 2;
    /// No usable tokens and no stored password: run `tessera login`.
    pub const LOGIN_REQUIRED: u8 = 3;
    /// The server could not be reached.
    pub const UNREACHABLE: u8 = 4;
    /// The keychain could not be used.
    pub const KEYCHAIN: u8 = 5;
}

/// A failed command: its exit code and one line for stderr.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn other(m: impl Into<String>) -> Self {
        Self::new(exit::FAILURE, m)
    }
    pub fn usage(m: impl Into<String>) -> Self {
        Self::new(exit::USAGE, m)
    }
    pub fn login_required(m: impl Into<String>) -> Self {
        Self::new(exit::LOGIN_REQUIRED, m)
    }
    pub fn unreachable(m: impl Into<String>) -> Self {
        Self::new(exit::UNREACHABLE, m)
    }
    pub fn keychain(m: impl Into<String>) -> Self {
        Self::new(exit::KEYCHAIN, m)
    }
}

/// What a command prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// `--output`: text or JSON for every command; `sectoken get` also speaks
/// kubectl's exec plugin protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    Text,
    Json,
    /// A client.authentication.k8s.io ExecCredential (`sectoken get` only).
    ExecCredential,
}

/// Options every developer command takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    pub output: OutputArg,
    /// Where connections (and the file keychain) live; default: the platform
    /// config directory (e.g. ~/.config/tessera).
    #[arg(long, env = "TESSERA_CLI_HOME", global = true)]
    pub config_dir: Option<PathBuf>,
    /// Which credential store keeps passwords and tokens; default: the one
    /// the connection's login used, else `platform`.
    #[arg(long, value_enum, env = "TESSERA_CLI_KEYRING", global = true)]
    pub keyring: Option<Backend>,
    /// Allow the encrypted file store (a key file beside it: protects
    /// against other users, not against this one). Implies --keyring file.
    #[arg(long, global = true)]
    pub insecure_keyring: bool,
}

impl Common {
    fn dir(&self) -> Result<PathBuf, CliError> {
        match &self.config_dir {
            Some(d) => Ok(d.clone()),
            None => dirs::config_dir()
                .map(|d| d.join("tessera"))
                .ok_or_else(|| CliError::other("no config directory: set --config-dir")),
        }
    }

    /// Text or JSON; `exec-credential` is for `sectoken get` alone.
    fn output(&self) -> Result<Output, CliError> {
        match self.output {
            OutputArg::Text => Ok(Output::Text),
            OutputArg::Json => Ok(Output::Json),
            OutputArg::ExecCredential => Err(CliError::usage(
                "--output exec-credential is for `tessera sectoken get` only",
            )),
        }
    }

    /// The keychain that holds `conn`'s secrets: the store named by
    /// `--keyring`, `--insecure-keyring` or TESSERA_CLI_KEYRING; else the one
    /// the connection's login used (as gh remembers insecure storage); else
    /// the platform's. A login (or `secstore set`) chooses afresh instead,
    /// with `conn` None: the file store is written only when that command
    /// opts in. Returns which store it is, for the login to remember.
    fn keychain(
        &self,
        conn: Option<&Connection>,
    ) -> Result<(Box<dyn keychain::Keychain>, Backend), CliError> {
        let asked = if self.insecure_keyring {
            Some(Backend::File)
        } else {
            self.keyring
        };
        let dir = self.dir()?;
        match (asked, conn.and_then(|c| c.keychain.map(|b| (c, b)))) {
            (Some(backend), _) => {
                if backend == Backend::File {
                    if !self.insecure_keyring {
                        return Err(CliError::usage(
                            "the file keychain is opt-in: add --insecure-keyring",
                        ));
                    }
                    eprintln!(
                        "warning: keeping secrets in an encrypted file whose key lies beside it (--insecure-keyring)"
                    );
                }
                Ok((keychain::open(backend, &dir)?, backend))
            }
            (None, Some((conn, backend))) => {
                let k = keychain::open_remembered(backend, &dir).map_err(|e| {
                    CliError::keychain(format!(
                        "{} keeps its secrets in the {} keychain (chosen at login), which cannot be used: {}",
                        conn.id,
                        backend.label(),
                        e.message
                    ))
                })?;
                Ok((k, backend))
            }
            (None, None) => Ok((keychain::open(Backend::Platform, &dir)?, Backend::Platform)),
        }
    }

    fn connections(&self) -> Result<Connections, CliError> {
        Connections::load(&self.dir()?)
    }
}

#[derive(Subcommand, Debug)]
pub enum ConnectionsCommand {
    /// Add a connection.
    Add {
        #[arg(long)]
        id: String,
        /// The server's base URL, e.g. `https://auth.example`.
        #[arg(long)]
        url: String,
        #[arg(long)]
        realm: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        username: Option<String>,
    },
    /// List connections.
    List,
    /// Show one connection.
    Show { id: String },
    /// Remove a connection (and forget its secrets).
    Remove { id: String },
}

#[derive(Args, Debug)]
pub struct ConnectionsArgs {
    #[command(subcommand)]
    pub command: ConnectionsCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The connection to sign in to.
    #[arg(long)]
    pub conn: String,
    /// Username (default: the connection's).
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from stdin (password grant); it is kept in the
    /// keychain so `sectoken get` can sign in again unattended.
    #[arg(long, conflicts_with = "browser")]
    pub password_stdin: bool,
    /// Sign in with the browser (code + PKCE, loopback redirect on 127.0.0.1).
    #[arg(long)]
    pub browser: bool,
    /// Do not try to open a browser (device and browser login): the URL is
    /// printed for you to open. With --browser it also keeps the browser
    /// login where there is no display or the session is remote (SSH),
    /// e.g. with the port forwarded (`ssh -L 8400:127.0.0.1:8400`).
    #[arg(long)]
    pub no_open: bool,
    /// The loopback port of the browser login's redirect (default: any free one).
    #[arg(long, requires = "browser")]
    pub port: Option<u16>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct ConnArgs {
    #[arg(long)]
    pub conn: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Subcommand, Debug)]
pub enum SectokenCommand {
    /// Print a valid access token (and refresh token) as one JSON object;
    /// with `--output exec-credential`, as a kubectl ExecCredential.
    Get(ConnArgs),
}

#[derive(Subcommand, Debug)]
pub enum SecstoreCommand {
    /// Store the connection's password (read from stdin).
    Set {
        #[arg(long)]
        conn: String,
        #[arg(long)]
        username: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Print the stored password.
    Get(ConnArgs),
    /// Forget the stored password and tokens.
    Delete(ConnArgs),
}

fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn green(s: &str) -> String {
    if stdout_color() {
        format!("\x1b[32m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

pub async fn connections(args: ConnectionsArgs) -> Result<(), CliError> {
    let c = &args.common;
    let output = c.output()?;
    let mut all = c.connections()?;
    match args.command {
        ConnectionsCommand::Add {
            id,
            url,
            realm,
            client_id,
            username,
        } => {
            let conn = Connection {
                id,
                url: url.trim_end_matches('/').to_string(),
                realm,
                client_id,
                username,
                keychain: None,
            };
            all.add(conn.clone())?;
            // Secrets left under this id by an earlier connection are not
            // this one's (`bind` would also catch them on first use).
            if let Ok((k, _)) = c.keychain(Some(&conn)) {
                let _ = cache::forget(k.as_ref(), &conn);
            }
            match output {
                Output::Json => print_json(&json!(conn)),
                Output::Text => println!("{} connection {}", green("added"), conn.id),
            }
        }
        ConnectionsCommand::List => match output {
            Output::Json => print_json(&json!(all.list())),
            Output::Text => {
                if all.list().is_empty() {
                    println!("no connections (add one with `tessera connections add`)");
                }
                for conn in all.list() {
                    println!(
                        "{}\t{}\trealm={}\tclient={}{}",
                        conn.id,
                        conn.url,
                        conn.realm,
                        conn.client_id,
                        conn.username
                            .as_deref()
                            .map(|u| format!("\tuser={u}"))
                            .unwrap_or_default()
                    );
                }
            }
        },
        ConnectionsCommand::Show { id } => {
            let conn = all.get(&id)?;
            match output {
                Output::Json => print_json(&json!(conn)),
                Output::Text => {
                    println!("id:        {}", conn.id);
                    println!("url:       {}", conn.url);
                    println!("realm:     {}", conn.realm);
                    println!("client id: {}", conn.client_id);
                    println!("username:  {}", conn.username.as_deref().unwrap_or("-"));
                    println!("issuer:    {}", conn.issuer());
                    println!(
                        "keychain:  {}",
                        conn.keychain.map(Backend::label).unwrap_or("-")
                    );
                }
            }
        }
        ConnectionsCommand::Remove { id } => {
            let gone = all.remove(&id)?;
            // Best effort: a connection's secrets go with it.
            if let Ok((k, _)) = c.keychain(Some(&gone)) {
                let _ = cache::forget(k.as_ref(), &gone);
            }
            match output {
                Output::Json => print_json(&json!({"removed": gone.id})),
                Output::Text => println!("{} connection {}", green("removed"), gone.id),
            }
        }
    }
    Ok(())
}

pub async fn login(args: LoginArgs) -> Result<(), CliError> {
    let c = &args.common;
    let output = c.output()?;
    let conn = c.connections()?.get(&args.conn)?.clone();
    let (keychain, backend) = c.keychain(None)?;
    let http = session::Http::new()?;
    let tokens = if args.password_stdin {
        let username = args
            .username
            .clone()
            .or(conn.username.clone())
            .ok_or_else(|| CliError::usage("--username is required (the connection has none)"))?;
        let mut password = String::new();
        std::io::stdin()
            .read_line(&mut password)
            .map_err(|e| CliError::other(format!("cannot read the password from stdin: {e}")))?;
        let password = password.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err(CliError::usage("no password on stdin"));
        }
        let t = http.password_grant(&conn, &username, &password).await?;
        let _lock = tokio::task::block_in_place(|| cache::lock(&c.dir()?, &conn))?;
        cache::bind(keychain.as_ref(), &conn)?;
        keychain.set(&conn.service(), cache::PASSWORD_KEY, &password)?;
        keychain.set(&conn.service(), cache::USERNAME_KEY, &username)?;
        t
    } else {
        let browser = args.browser
            && {
                let unfit = (!args.no_open).then(session::no_display).flatten();
                if let Some(why) = unfit {
                    eprintln!(
                    "{why}: signing in with a device code instead (--browser --no-open keeps the browser login)"
                );
                }
                unfit.is_none()
            };
        let t = if browser {
            http.browser_login(&conn, !args.no_open, args.port).await?
        } else {
            http.device_login(&conn, !args.no_open).await?
        };
        // A password stored by an earlier login may be someone else's: this
        // sign-in replaces it, so `sectoken get` never falls back to it.
        let _lock = tokio::task::block_in_place(|| cache::lock(&c.dir()?, &conn))?;
        cache::bind(keychain.as_ref(), &conn)?;
        keychain.delete(&conn.service(), cache::PASSWORD_KEY)?;
        keychain.delete(&conn.service(), cache::USERNAME_KEY)?;
        t
    };
    {
        let _lock = tokio::task::block_in_place(|| cache::lock(&c.dir()?, &conn))?;
        cache::save(keychain.as_ref(), &conn, &tokens)?;
    }
    remember_keychain(c, &conn, backend, keychain.name())?;
    let who = tokens.username();
    match output {
        Output::Json => print_json(
            &json!({"connection": conn.id, "username": who, "keychain": keychain.name()}),
        ),
        Output::Text => println!(
            "{} to {} as {}",
            green("signed in"),
            conn.id,
            who.as_deref().unwrap_or("?")
        ),
    }
    Ok(())
}

pub async fn sectoken(cmd: SectokenCommand) -> Result<(), CliError> {
    let SectokenCommand::Get(args) = cmd;
    let c = &args.common;
    // Checked before any network call: a bad KUBERNETES_EXEC_INFO is a
    // usage error, not a refresh.
    let exec_version = match c.output {
        OutputArg::ExecCredential => Some(helpers::exec_api_version()?),
        OutputArg::Text | OutputArg::Json => None,
    };
    let conn = c.connections()?.get(&args.conn)?.clone();
    let (keychain, _) = c.keychain(Some(&conn))?;
    let http = session::Http::new()?;
    let dir = c.dir()?;
    let tokens = cache::valid_tokens(&http, keychain.as_ref(), &conn, &dir).await?;
    match exec_version {
        Some(version) => print_json(&helpers::exec_credential(version, &tokens)),
        // cwctl's shape for text and JSON alike: IDEs parse it.
        None => print_json(&tokens.for_ide()),
    }
    Ok(())
}

pub async fn secstore(cmd: SecstoreCommand) -> Result<(), CliError> {
    match cmd {
        SecstoreCommand::Set {
            conn,
            username,
            common,
        } => {
            let conn = common.connections()?.get(&conn)?.clone();
            let username = username.or(conn.username.clone()).ok_or_else(|| {
                CliError::usage("--username is required (the connection has none)")
            })?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| CliError::other(format!("cannot read stdin: {e}")))?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(CliError::usage("no password on stdin"));
            }
            let output = common.output()?;
            let (k, backend) = common.keychain(None)?;
            k.set(&conn.service(), cache::PASSWORD_KEY, password)?;
            k.set(&conn.service(), cache::USERNAME_KEY, &username)?;
            remember_keychain(&common, &conn, backend, k.name())?;
            match output {
                Output::Json => print_json(&json!({"connection": conn.id, "stored": true})),
                Output::Text => println!("{} the password for {}", green("stored"), conn.id),
            }
        }
        SecstoreCommand::Get(args) => {
            let conn = args.common.connections()?.get(&args.conn)?.clone();
            let output = args.common.output()?;
            let (k, _) = args.common.keychain(Some(&conn))?;
            let password = k
                .get(&conn.service(), cache::PASSWORD_KEY)?
                .ok_or_else(|| {
                    CliError::login_required(format!("no password stored for {}", conn.id))
                })?;
            let username = k.get(&conn.service(), cache::USERNAME_KEY)?;
            match output {
                Output::Json => print_json(
                    &json!({"connection": conn.id, "username": username, "password": password}),
                ),
                Output::Text => println!("{password}"),
            }
        }
        SecstoreCommand::Delete(args) => {
            let conn = args.common.connections()?.get(&args.conn)?.clone();
            let output = args.common.output()?;
            let (k, _) = args.common.keychain(Some(&conn))?;
            cache::forget(k.as_ref(), &conn)?;
            match output {
                Output::Json => print_json(&json!({"connection": conn.id, "deleted": true})),
                Output::Text => println!("{} the secrets of {}", green("deleted"), conn.id),
            }
        }
    }
    Ok(())
}

pub async fn logout(args: ConnArgs) -> Result<(), CliError> {
    let c = &args.common;
    let output = c.output()?;
    let conn = c.connections()?.get(&args.conn)?.clone();
    let (keychain, _) = c.keychain(Some(&conn))?;
    let http = session::Http::new()?;
    // Under the connection's lock: a `sectoken get` running now cannot store
    // fresh tokens after they were cleared here.
    let _lock = tokio::task::block_in_place(|| cache::lock(&c.dir()?, &conn))?;
    cache::bind(keychain.as_ref(), &conn)?;
    let revoked = cache::logout(&http, keychain.as_ref(), &conn).await;
    cache::forget(keychain.as_ref(), &conn)?;
    let revoked = revoked.map_err(|e| {
        CliError::new(
            e.code,
            format!(
                "signed out locally, but the server was not told: {}",
                e.message
            ),
        )
    })?;
    match output {
        Output::Json => print_json(&json!({"connection": conn.id, "revoked": revoked})),
        Output::Text if revoked => println!(
            "{} of {} (the server revoked the session)",
            green("signed out"),
            conn.id
        ),
        Output::Text => println!(
            "{} of {} (there was no session to revoke)",
            green("signed out"),
            conn.id
        ),
    }
    Ok(())
}

pub async fn whoami(args: ConnArgs) -> Result<(), CliError> {
    let c = &args.common;
    let output = c.output()?;
    let conn = c.connections()?.get(&args.conn)?.clone();
    let (keychain, _) = c.keychain(Some(&conn))?;
    let http = session::Http::new()?;
    let tokens = cache::valid_tokens(&http, keychain.as_ref(), &conn, &c.dir()?).await?;
    let info = http.userinfo(&conn, &tokens.access_token).await?;
    match output {
        Output::Json => print_json(&info),
        Output::Text => {
            let s = |k: &str| info[k].as_str().unwrap_or("-").to_string();
            println!(
                "{} ({}) at {}",
                s("preferred_username"),
                s("email"),
                conn.issuer()
            );
        }
    }
    Ok(())
}

/// Records in connections.toml the keychain that now holds `conn`'s
/// secrets (`store` is its [`keychain::Keychain::name`]). If another store
/// held them before, what it has for `conn` is stale: it is forgotten (best
/// effort: that store may be gone). Two choices can name one store
/// (`platform` is keyutils on a Linux machine without Secret Service): then
/// nothing is forgotten, or the secrets just written would go.
fn remember_keychain(
    c: &Common,
    conn: &Connection,
    backend: Backend,
    store: &str,
) -> Result<(), CliError> {
    if conn.keychain == Some(backend) {
        return Ok(());
    }
    if let Some(old) = conn.keychain {
        if let Ok(k) = keychain::open_remembered(old, &c.dir()?) {
            if k.name() != store {
                let _ = cache::forget(k.as_ref(), conn);
            }
        }
    }
    c.connections()?.remember_keychain(&conn.id, backend)
}
