//! `tessera admin backup FILE` and `tessera admin restore FILE`: the
//! embedded database copied while the server runs, and put back with the
//! server stopped. The SQLite work (and its checks) lives in
//! `tessera_store_sqlite::backup`; this is the command's words around it.
//! PostgreSQL has its own tools: both commands point at pg_dump/pg_restore.
//! The master key is never in the database, so never in a backup.

use crate::config::Config;
use crate::serve;
use anyhow::{anyhow, bail};
use std::path::{Path, PathBuf};
use tessera_store_sqlite::backup::{self as sqlite, BackupError};

const POSTGRES: &str = "this server uses PostgreSQL: back it up with pg_dump (e.g. `pg_dump --format=custom --file=tessera.dump \"$DATABASE_URL\"`) and restore with pg_restore; see \"Backup and restore\" in docs/operations.md";

/// The SQLite file the configuration names, chosen as `serve::open_store`
/// chooses it: a `sqlite:` URL, else `tessera.db` in the data directory.
fn sqlite_file(cfg: &Config) -> anyhow::Result<PathBuf> {
    match cfg.database_url.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            bail!("{POSTGRES}")
        }
        Some(url) if url.starts_with("sqlite:") => Ok(sqlite::path_from_url(url)?),
        Some(_) => bail!("database_url must start with postgres://, postgresql:// or sqlite:"),
        None => Ok(cfg.data_dir.join("tessera.db")),
    }
}

/// Where this configuration's master key comes from, for the messages.
fn key_source(cfg: &Config) -> String {
    if std::env::var_os("TESSERA_MASTER_KEY").is_some() {
        "TESSERA_MASTER_KEY".to_string()
    } else {
        cfg.data_dir.join("master.key").display().to_string()
    }
}

pub async fn backup(cfg: &Config, file: &Path) -> anyhow::Result<()> {
    let db = sqlite_file(cfg)?;
    let snapshot = sqlite::backup(&db, file).await?;
    println!(
        "backed up {} to {} (schema version {}, {} bytes)",
        db.display(),
        file.display(),
        snapshot.schema_version,
        snapshot.bytes
    );
    println!(
        "The backup does not contain the master key ({}). Keep a copy of the key apart from the backup: restoring it needs the same key.",
        key_source(cfg)
    );
    Ok(())
}

pub async fn restore(cfg: &Config, file: &Path, force: bool) -> anyhow::Result<()> {
    let db = sqlite_file(cfg)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        ensure_private_dir(dir)?;
    }
    // The key is checked on a copy first: a wrong key must not cost the
    // database it would have replaced.
    let key_checked = check_master_key_before(cfg, file).await?;
    let snapshot = match sqlite::restore(file, &db, force).await {
        Err(BackupError::TargetExists(at)) => bail!(
            "a database already exists at {}; stop the server and pass --force to replace it",
            at.display()
        ),
        Err(BackupError::InUse(at)) => bail!(
            "the database at {} is in use: stop `tessera serve` before restoring",
            at.display()
        ),
        other => other?,
    };
    println!(
        "restored {} into {} (schema version {})",
        file.display(),
        db.display(),
        snapshot.schema_version
    );
    if let Some(realms) = key_checked {
        println!(
            "The master key ({}) unseals the signing keys of all {realms} realms.",
            key_source(cfg)
        );
    }
    Ok(())
}

/// Checks the master key against a scratch copy of `backup` (`None` and a
/// warning when there is no key yet, as a restore onto a new machine may
/// come before the key). Returns how many realms' keys it unseals.
async fn check_master_key_before(cfg: &Config, backup: &Path) -> anyhow::Result<Option<usize>> {
    let source = key_source(cfg);
    let in_env = std::env::var_os("TESSERA_MASTER_KEY").is_some();
    if !in_env && !cfg.data_dir.join("master.key").exists() {
        println!(
            "warning: there is no master key at {source} (nor TESSERA_MASTER_KEY): put the key this backup was taken with there before starting tessera"
        );
        return Ok(None);
    }
    sqlite::check(backup).await?;
    let scratch = tempfile::tempdir()?;
    let copy = scratch.path().join("tessera.db");
    std::fs::copy(backup, &copy)?;
    let mut scratch_cfg = cfg.clone();
    scratch_cfg.database_url = Some(format!("sqlite://{}", copy.display()));
    check_master_key(&scratch_cfg, serve::master_key(cfg)?, &source)
        .await
        .map(Some)
}

/// A restored database opens only with the master key it was written
/// with: checks that `master` unseals every realm's signing keys in the
/// database `cfg` names (as `serve` does at start).
async fn check_master_key(
    cfg: &Config,
    master: tessera_keys::MasterKey,
    source: &str,
) -> anyhow::Result<usize> {
    let store = serve::open_store(cfg, false).await?.store;
    let state = serve::state(cfg, store, master, "http://localhost")?;
    let realms = state
        .services
        .admin
        .list_realms()
        .await
        .map_err(|e| anyhow!("cannot read the restored realms: {e:?}"))?;
    for realm in &realms {
        if state.services.verifier.realm_keys(realm).await.is_err() {
            bail!(
                "the master key ({source}) does not unseal the signing keys of realm {} in the restored database: use the key this backup was taken with",
                realm.name
            );
        }
    }
    Ok(realms.len())
}

fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| anyhow!("cannot create data directory {}: {e}", dir.display()))
}
