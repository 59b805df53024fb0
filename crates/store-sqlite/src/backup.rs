//! Online backup and offline restore of the embedded database file.
//!
//! A backup is SQLite's `VACUUM INTO` on a read-only connection of its own:
//! one read transaction, so the copy is a consistent snapshot while the
//! server's writer goes on committing (WAL mode lets one writer and readers
//! run together; the writer never waits for the backup). A restore first
//! checks that the file is a Tessera database this release can open (SQLite
//! integrity, and every applied migration known with the same checksum),
//! then replaces the database atomically. The master key never lives in the
//! database, so no backup contains it.

use crate::MIGRATOR;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tessera_store::schema::{known_version, newer_schema_message};

/// What a checked database file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The newest migration applied to it.
    pub schema_version: i64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Why a backup or restore did not happen. Nothing was replaced or left
/// behind in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no Tessera database at {}", .0.display())]
    NoDatabase(PathBuf),
    #[error("{} already exists; a backup never overwrites a file: choose a new name", .0.display())]
    DestinationExists(PathBuf),
    #[error("{} is not a SQLite database", .0.display())]
    NotSqlite(PathBuf),
    #[error("{} is not a Tessera database (it has no schema migrations)", .0.display())]
    NotTessera(PathBuf),
    #[error("{} failed SQLite's integrity check: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("{}", newer_schema_message(*found, *known))]
    NewerSchema { found: i64, known: i64 },
    #[error("{} has schema migration {version}, which this tessera does not have (or has with other contents)", path.display())]
    UnknownMigration { path: PathBuf, version: i64 },
    #[error("a database already exists at {}", .0.display())]
    TargetExists(PathBuf),
    #[error("the database at {} is in use (is `tessera serve` running on it?)", .0.display())]
    InUse(PathBuf),
    #[error("{what} {}: {error}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("SQLite: {0}")]
    Sqlite(String),
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |error| BackupError::Io { what, path, error }
}

fn sqlite_error(e: sqlx::Error) -> BackupError {
    BackupError::Sqlite(e.to_string())
}

/// The file a `sqlite:` database URL names.
pub fn path_from_url(url: &str) -> Result<PathBuf, BackupError> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| BackupError::Sqlite(format!("bad SQLite URL: {e}")))?;
    let path = opts.get_filename();
    let name = path.to_string_lossy();
    if name.is_empty() || name.starts_with(":memory:") || name.contains("sqlx-in-memory") {
        return Err(BackupError::Sqlite(
            "an in-memory database has nothing to back up or restore".into(),
        ));
    }
    Ok(path.to_path_buf())
}

/// Writes a consistent copy of the database at `source` to `dest`, a new
/// file (mode 0600) that must not exist yet. Safe while a server writes to
/// `source`: the copy holds every transaction committed before it began.
pub async fn backup(source: &Path, dest: &Path) -> Result<Snapshot, BackupError> {
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source.to_path_buf()));
    }
    // Claim the name first: `create_new` fails atomically if anything is
    // there, so a backup can never overwrite a file, not even in a race.
    create_private(dest).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => BackupError::DestinationExists(dest.to_path_buf()),
        _ => io_error("cannot create", dest)(e),
    })?;
    let partial = sibling(dest, "partial")?;
    let result = write_backup(source, &partial, dest).await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(dest);
    }
    result
}

async fn write_backup(source: &Path, partial: &Path, dest: &Path) -> Result<Snapshot, BackupError> {
    // SQLite fills this empty file in place, so the copy keeps its 0600
    // mode and is never readable by others, not even half-written.
    create_private(partial).map_err(io_error("cannot create", partial))?;
    let target = partial
        .to_str()
        .ok_or_else(|| BackupError::Sqlite(format!("{} is not UTF-8", partial.display())))?
        .to_string();
    let mut conn = SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(sqlite_error)?;
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await
        .map_err(sqlite_error);
    conn.close().await.ok();
    copied?;
    // The copy must be intact and a Tessera database; one written by a newer
    // release is copied all the same (only a restore needs to open it).
    let snapshot = examine(partial, false).await?;
    sync_file(partial)?;
    std::fs::rename(partial, dest).map_err(io_error("cannot rename to", dest))?;
    sync_dir(dest)?;
    Ok(snapshot)
}

/// Checks that `path` is an intact Tessera database this release can open:
/// SQLite's integrity check passes and every migration applied to it is one
/// this binary has, with the same contents. Reads the file only.
pub async fn check(path: &Path) -> Result<Snapshot, BackupError> {
    examine(path, true).await
}

/// [`check`], with the schema's compatibility checked only if `known_schema`.
async fn examine(path: &Path, known_schema: bool) -> Result<Snapshot, BackupError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => BackupError::NoDatabase(path.to_path_buf()),
        _ => io_error("cannot read", path)(e),
    })?;
    if !meta.is_file() {
        return Err(BackupError::NotSqlite(path.to_path_buf()));
    }
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(io_error("cannot open", path))?;
    let read = read_up_to(&mut file, &mut header).map_err(io_error("cannot read", path))?;
    if read == 0 {
        return Err(BackupError::NotTessera(path.to_path_buf()));
    }
    if &header[..read] != b"SQLite format 3\0" {
        return Err(BackupError::NotSqlite(path.to_path_buf()));
    }
    // Immutable: no locks, no -wal or -shm files made next to the backup.
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .create_if_missing(false)
        .connect()
        .await
        .map_err(sqlite_error)?;
    let result = inspect(&mut conn, path, meta.len(), known_schema).await;
    conn.close().await.ok();
    result
}

async fn inspect(
    conn: &mut SqliteConnection,
    path: &Path,
    bytes: u64,
    known_schema: bool,
) -> Result<Snapshot, BackupError> {
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| corrupt_or_sqlite(path, e))?;
    if problems.len() != 1 || problems[0] != "ok" {
        let mut detail = problems.into_iter().take(3).collect::<Vec<_>>().join("; ");
        detail.truncate(300);
        return Err(BackupError::Corrupt {
            path: path.to_path_buf(),
            detail,
        });
    }
    let has_table: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(sqlite_error)?;
    if has_table == 0 {
        return Err(BackupError::NotTessera(path.to_path_buf()));
    }
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(sqlite_error)?;
    let Some(newest) = applied.iter().map(|(v, _, _)| *v).max() else {
        return Err(BackupError::NotTessera(path.to_path_buf()));
    };
    let snapshot = Snapshot {
        schema_version: newest,
        bytes,
    };
    if !known_schema {
        return Ok(snapshot);
    }
    let known = known_version(&MIGRATOR);
    if newest > known {
        return Err(BackupError::NewerSchema {
            found: newest,
            known,
        });
    }
    for (version, checksum, success) in &applied {
        let same = MIGRATOR
            .iter()
            .any(|m| m.version == *version && *m.checksum == checksum[..]);
        if !same || !success {
            return Err(BackupError::UnknownMigration {
                path: path.to_path_buf(),
                version: *version,
            });
        }
    }
    Ok(snapshot)
}

/// SQLite says "malformed" or "not a database" for a damaged file.
fn corrupt_or_sqlite(path: &Path, e: sqlx::Error) -> BackupError {
    let code = e
        .as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff);
    match code {
        // SQLITE_CORRUPT, SQLITE_NOTADB
        Some(11) | Some(26) => BackupError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        _ => sqlite_error(e),
    }
}

/// Replaces the database at `target` with a copy of `backup`, after
/// [`check`]ing it. An existing database is replaced only when `replace`
/// is set and no process has it open. The copy is written to a temporary
/// file in the same directory, synced, and renamed over `target`; the old
/// database's `-wal` and `-shm` files are removed first, so SQLite can
/// never replay the old log into the restored file.
pub async fn restore(backup: &Path, target: &Path, replace: bool) -> Result<Snapshot, BackupError> {
    let snapshot = check(backup).await?;
    if target.exists() {
        if !replace {
            return Err(BackupError::TargetExists(target.to_path_buf()));
        }
        ensure_unused(target).await?;
    }
    let temp = sibling(target, "restoring")?;
    let result = replace_with(backup, &temp, target);
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map(|()| snapshot)
}

fn replace_with(backup: &Path, temp: &Path, target: &Path) -> Result<(), BackupError> {
    let mut from = std::fs::File::open(backup).map_err(io_error("cannot open", backup))?;
    let mut to = create_private(temp).map_err(io_error("cannot create", temp))?;
    io::copy(&mut from, &mut to).map_err(io_error("cannot write", temp))?;
    to.sync_all().map_err(io_error("cannot sync", temp))?;
    drop(to);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = target.as_os_str().to_owned();
        name.push(suffix);
        let stale = PathBuf::from(name);
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("cannot remove", &stale)(e)),
        }
    }
    std::fs::rename(temp, target).map_err(io_error("cannot rename to", target))?;
    sync_dir(target)
}

/// Fails with `InUse` when another connection (a running server) has the
/// database open. In WAL mode every open connection holds a shared lock on
/// the database file; a connection in exclusive locking mode must take an
/// exclusive lock to read, which it cannot get while any other is open.
pub async fn ensure_unused(path: &Path) -> Result<(), BackupError> {
    let busy = |e: &sqlx::Error| {
        e.as_database_error()
            .and_then(|d| d.code())
            .and_then(|c| c.parse::<i32>().ok())
            // SQLITE_BUSY, SQLITE_LOCKED and their extended codes
            .is_some_and(|c| matches!(c & 0xff, 5 | 6))
    };
    let in_use = || BackupError::InUse(path.to_path_buf());
    let mut conn = match SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .pragma("locking_mode", "EXCLUSIVE")
        .busy_timeout(Duration::ZERO)
        .connect()
        .await
    {
        Ok(conn) => conn,
        Err(e) if busy(&e) => return Err(in_use()),
        Err(e) => return Err(sqlite_error(e)),
    };
    let probe = sqlx::query("BEGIN EXCLUSIVE; ROLLBACK")
        .execute(&mut conn)
        .await;
    conn.close().await.ok();
    match probe {
        Ok(_) => Ok(()),
        Err(e) if busy(&e) => Err(in_use()),
        // Not a database we could lock (damaged, not SQLite): it is being
        // replaced anyway, and nothing can be serving it.
        Err(_) => Ok(()),
    }
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A new file only its owner can read (0600 on Unix); fails if one exists.
fn create_private(path: &Path) -> io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// A hidden temporary name next to `path`, so a rename onto `path` stays
/// within one file system (and is atomic). Relative names get a leading
/// `./`, so SQLite never reads a name such as `file:x` as a URI.
fn sibling(path: &Path, tag: &str) -> Result<PathBuf, BackupError> {
    let name = path.file_name().ok_or_else(|| BackupError::Io {
        what: "not a file name:",
        path: path.to_path_buf(),
        error: io::ErrorKind::InvalidInput.into(),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".{tag}-{}", std::process::id()));
    Ok(dir.join(temp))
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_error("cannot sync", path))
}

/// Makes a rename in the directory of `path` durable.
fn sync_dir(path: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("cannot sync", dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
