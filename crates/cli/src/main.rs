//! The `tessera` binary: `serve` runs the server, `admin` manages realms,
//! clients, users, sessions and keys, and the developer commands
//! (`connections`, `login`, `sectoken get`, ...) sign IDEs in. Thin: parsing
//! and dispatch only.

mod admin;
mod backup;
mod config;
mod dev;
mod revocations;
mod serve;
mod server;
mod workspace;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Token service for developer platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the server's data lives; shared by `serve` and local `admin`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "TESSERA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory for the embedded database and the master key file.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL (postgres://... for PostgreSQL); default: SQLite in the data directory.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// URL clients reach this server at (issuer and endpoint URLs).
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Administer realms, clients, users, sessions and signing keys.
    Admin(admin::AdminArgs),
    /// Che workspaces: the environment of a workspace agent.
    Workspace(workspace::WorkspaceArgs),
    /// Servers this CLI signs in to (for `login` and `sectoken get`).
    Connections(dev::ConnectionsArgs),
    /// Sign in to a connection (device code by default).
    Login(dev::LoginArgs),
    /// Revoke the connection's tokens and forget its secrets.
    Logout(dev::ConnArgs),
    /// Tokens for IDEs: `sectoken get --conn ID` prints one JSON object.
    Sectoken {
        #[command(subcommand)]
        command: dev::SectokenCommand,
    },
    /// The stored password of a connection, for scripts.
    Secstore {
        #[command(subcommand)]
        command: dev::SecstoreCommand,
    },
    /// Who the connection is signed in as.
    Whoami(dev::ConnArgs),
    /// git credential helper: `git config credential.https://HOST.helper "tessera credential --conn ID"`.
    Credential(dev::CredentialArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tessera",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        other => other,
    };
    let dev = |r: Result<(), dev::CliError>| -> anyhow::Result<Option<u8>> {
        Ok(match r {
            Ok(()) => None,
            Err(e) => {
                eprintln!("error: {}", e.message);
                Some(e.code)
            }
        })
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve {
                cfg,
                listen,
                public_url,
            } => serve::run(cfg, listen, public_url).await.map(|()| None),
            Command::Admin(args) => admin::run(args).await.map(|()| None),
            Command::Workspace(args) => workspace::run(args).await.map(|()| None),
            Command::Connections(args) => dev(dev::connections(args).await),
            Command::Login(args) => dev(dev::login(args).await),
            Command::Logout(args) => dev(dev::logout(args).await),
            Command::Sectoken { command } => dev(dev::sectoken(command).await),
            Command::Secstore { command } => dev(dev::secstore(command).await),
            Command::Whoami(args) => dev(dev::whoami(args).await),
            Command::Credential(args) => dev(dev::credential(args).await),
            Command::Completions { .. } => Ok(None),
        }
    });
    match result {
        Ok(None) => ExitCode::from(dev::exit::OK),
        Ok(Some(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
