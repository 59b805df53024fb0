//! `tessera workspace env <key>`: the environment a Che workspace agent needs
//! (`CHE_MACHINE_AUTH_SIGNATURE__*`, `CHE_WORKSPACE_ID`, `CHE_MACHINE_TOKEN`),
//! asked from a running server with the caller's access token.

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Args)]
pub struct WorkspaceArgs {
    /// Server URL.
    #[arg(long, env = "TESSERA_URL", global = true)]
    url: Option<String>,
    /// Access token of the calling user.
    #[arg(long, env = "TESSERA_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: WorkspaceCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    /// `export NAME='value'` lines for a shell.
    Shell,
    Json,
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Print the agent environment of a running workspace (id or namespace/name).
    Env {
        key: String,
        #[arg(long, value_enum, default_value = "shell")]
        output: Output,
    },
}

const AGENT_VARS: [&str; 4] = [
    "CHE_MACHINE_AUTH_SIGNATURE__ALGORITHM",
    "CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY",
    "CHE_MACHINE_TOKEN",
    "CHE_WORKSPACE_ID",
];

pub async fn run(args: WorkspaceArgs) -> anyhow::Result<()> {
    let url = args
        .url
        .ok_or_else(|| anyhow!("pass --url or set TESSERA_URL"))?;
    let token = args
        .token
        .ok_or_else(|| anyhow!("pass --token or set TESSERA_TOKEN"))?;
    match args.command {
        WorkspaceCommand::Env { key, output } => {
            let seg: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
            let base = url.trim_end_matches('/');
            let res = reqwest::Client::new()
                .get(format!("{base}/api/workspace/{seg}/env"))
                .bearer_auth(&token)
                .send()
                .await
                .with_context(|| format!("cannot reach {base}"))?;
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                let status = axum::http::StatusCode::from_u16(status.as_u16())?;
                bail!("{}", crate::admin::describe(status, &body));
            }
            let all: BTreeMap<String, String> =
                serde_json::from_value(body).context("unexpected response")?;
            // Only the known names, so a hostile server cannot smuggle shell
            // syntax into `eval "$(tessera workspace env ...)"`.
            let vars: BTreeMap<&str, &String> = AGENT_VARS
                .iter()
                .map(|k| {
                    all.get(*k)
                        .map(|v| (*k, v))
                        .ok_or_else(|| anyhow!("server response lacks {k}"))
                })
                .collect::<anyhow::Result<_>>()?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&vars)?),
                Output::Shell => {
                    for (k, v) in &vars {
                        println!("export {k}='{}'", v.replace('\'', r"'\''"));
                    }
                }
            }
            Ok(())
        }
    }
}
