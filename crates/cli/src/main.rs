//! The `tessera` binary: `serve` runs the server, `admin` manages realms,
//! clients, users, sessions and keys. Thin: parsing and dispatch only.

mod admin;
mod config;
mod serve;
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
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                cfg,
                listen,
                public_url,
            } => serve::run(cfg, listen, public_url).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Workspace(args) => workspace::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
