//! Connections: where a Tessera (or Keycloak) server is and how to sign in
//! to it, kept in `connections.toml` in the CLI's config directory. IDs are
//! case-insensitive (cwctl's rule); the file is written atomically, 0600.

use super::keychain::Backend;
use super::CliError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    /// The server's base URL (without `/realms/...`).
    pub url: String,
    pub realm: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The keychain the last login stored this connection's secrets in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keychain: Option<Backend>,
}

impl Connection {
    /// `<url>/realms/<realm>`: the issuer.
    pub fn issuer(&self) -> String {
        format!("{}/realms/{}", self.url.trim_end_matches('/'), self.realm)
    }
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/protocol/openid-connect/{path}", self.issuer())
    }
    /// The keychain service of this connection (Codewind's `<app>.<id>`).
    pub fn service(&self) -> String {
        format!("tessera.{}", self.id.to_lowercase())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default, rename = "connection")]
    connections: Vec<Connection>,
}

/// The connections file of a config directory.
pub struct Connections {
    path: PathBuf,
    file: File,
}

impl Connections {
    pub fn load(dir: &Path) -> Result<Self, CliError> {
        let path = dir.join("connections.toml");
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                CliError::usage(format!(
                    "{} is not a valid connections file: {e}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => {
                return Err(CliError::other(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        Ok(Self { path, file })
    }

    pub fn list(&self) -> &[Connection] {
        &self.file.connections
    }

    pub fn get(&self, id: &str) -> Result<&Connection, CliError> {
        self.file
            .connections
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| {
                CliError::usage(format!(
                    "no connection {id:?} (see `tessera connections list`)"
                ))
            })
    }

    pub fn add(&mut self, c: Connection) -> Result<(), CliError> {
        validate(&c)?;
        if self.get(&c.id).is_ok() {
            return Err(CliError::usage(format!(
                "connection {:?} exists already (remove it first)",
                c.id
            )));
        }
        self.file.connections.push(c);
        self.save()
    }

    /// Records the keychain a login used for connection `id`.
    pub fn remember_keychain(&mut self, id: &str, backend: Backend) -> Result<(), CliError> {
        let conn = self
            .file
            .connections
            .iter_mut()
            .find(|c| c.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| CliError::usage(format!("no connection {id:?}")))?;
        if conn.keychain == Some(backend) {
            return Ok(());
        }
        conn.keychain = Some(backend);
        self.save()
    }

    pub fn remove(&mut self, id: &str) -> Result<Connection, CliError> {
        let at = self
            .file
            .connections
            .iter()
            .position(|c| c.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| CliError::usage(format!("no connection {id:?}")))?;
        let gone = self.file.connections.remove(at);
        self.save()?;
        Ok(gone)
    }

    /// Writes a temporary file beside the real one (0600 from the start),
    /// syncs it and renames it over: readers see the old or the new file.
    fn save(&self) -> Result<(), CliError> {
        let text = format!(
            "# Tessera CLI connections (tessera connections add|remove).\n{}",
            toml::to_string_pretty(&self.file)
                .map_err(|e| CliError::other(format!("cannot write connections: {e}")))?
        );
        write_private(&self.path, text.as_bytes())
    }
}

fn validate(c: &Connection) -> Result<(), CliError> {
    if c.id.is_empty()
        || c.id.len() > 64
        || !c
            .id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    {
        return Err(CliError::usage(
            "connection id must be 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    let url = url::Url::parse(&c.url)
        .map_err(|_| CliError::usage(format!("--url {:?} is not a URL", c.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CliError::usage("--url must be http or https"));
    }
    if c.realm.is_empty() || c.client_id.is_empty() {
        return Err(CliError::usage("--realm and --client-id must not be empty"));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with mode 0600, creating the directory (0700).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let fail = |e: std::io::Error| CliError::other(format!("cannot write {}: {e}", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(fail)
}

pub fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    let fail = |e: std::io::Error| CliError::other(format!("cannot create {}: {e}", dir.display()));
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(fail)
}
