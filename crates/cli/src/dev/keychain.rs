//! Where the CLI keeps passwords and tokens: the platform credential store
//! through the keyring crates (Secret Service on Linux desktops, macOS
//! Keychain, Windows Credential Manager), the Linux kernel keyutils store
//! for headless machines, or, only when asked with `--insecure-keyring`, an
//! encrypted file beside the connections file. Entries are named by service
//! `tessera.<connection id>` (Codewind's `<app>.<connection>`) and a key.

use super::connections::{create_private_dir, write_private};
use super::CliError;
use keyring_core::api::CredentialStoreApi;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which store to use. A connection remembers the one its login used
/// (`keychain = "..."` in connections.toml), so later commands find the
/// secrets without being told again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The platform's store: Secret Service (Linux, with a session bus),
    /// Keychain (macOS), Credential Manager (Windows); keyutils on a Linux
    /// machine without a session bus.
    Platform,
    /// The Linux kernel key store (works headless).
    Keyutils,
    /// An encrypted file in the config directory (needs --insecure-keyring).
    File,
}

pub trait Keychain: Send + Sync {
    fn name(&self) -> &'static str;
    fn get(&self, service: &str, key: &str) -> Result<Option<String>, CliError>;
    fn set(&self, service: &str, key: &str, value: &str) -> Result<(), CliError>;
    /// Deleting what is not there is not an error.
    fn delete(&self, service: &str, key: &str) -> Result<(), CliError>;
}

impl Backend {
    /// The name in connections.toml, `--keyring` and messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Keyutils => "keyutils",
            Self::File => "file",
        }
    }
}

/// Opens the chosen store, checking it answers.
pub fn open(backend: Backend, config_dir: &Path) -> Result<Box<dyn Keychain>, CliError> {
    match backend {
        Backend::File => Ok(Box::new(FileKeychain::open(config_dir)?)),
        Backend::Keyutils => keyutils(),
        Backend::Platform => platform(),
    }
}

/// Opens the store a connection's login chose. Unlike [`open`], the file
/// store must exist already: a missing key file means its secrets are gone,
/// and a fresh empty store would only turn that into "not signed in".
pub fn open_remembered(backend: Backend, config_dir: &Path) -> Result<Box<dyn Keychain>, CliError> {
    if backend == Backend::File {
        let key = config_dir.join("secrets.key");
        if !key.exists() {
            return Err(CliError::keychain(format!("{} is missing", key.display())));
        }
    }
    open(backend, config_dir)
}

#[cfg(target_os = "linux")]
fn keyutils() -> Result<Box<dyn Keychain>, CliError> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    // keyutils needs a session keyring. A process started outside a login
    // session (cron, CI, a service) has none and gets one here, but that one
    // dies with the process: then only the per-user persistent keyring keeps
    // secrets between runs, so without it this store cannot work.
    if KeyRing::from_special_id(KeyRingIdentifier::Session, false).is_err() {
        KeyRing::from_special_id(KeyRingIdentifier::Session, true)
            .map_err(|e| CliError::keychain(format!("keyutils: no session keyring ({e:?})")))?;
        KeyRing::get_persistent(KeyRingIdentifier::Session).map_err(|e| {
            CliError::keychain(format!(
                "keyutils: this process has no session keyring and the kernel offers no persistent keyring ({e:?}); run inside a login session (or `keyctl session`), or use --insecure-keyring"
            ))
        })?;
    }
    let store = linux_keyutils_keyring_store::Store::new()
        .map_err(|e| CliError::keychain(format!("keyutils: {e}")))?;
    Ok(Box::new(StoreKeychain {
        name: "keyutils",
        store,
    }))
}

#[cfg(not(target_os = "linux"))]
fn keyutils() -> Result<Box<dyn Keychain>, CliError> {
    Err(CliError::keychain(
        "the keyutils store exists on Linux only",
    ))
}

#[cfg(target_os = "linux")]
fn platform() -> Result<Box<dyn Keychain>, CliError> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        if let Ok(store) = zbus_secret_service_keyring_store::Store::new() {
            let k = StoreKeychain {
                name: "secret-service",
                store,
            };
            // A bus without a Secret Service daemon answers nothing useful:
            // probe once, and fall back to the kernel store.
            if k.get("tessera.probe", "probe").is_ok() {
                return Ok(Box::new(k));
            }
        }
    }
    keyutils()
}

#[cfg(target_os = "macos")]
fn platform() -> Result<Box<dyn Keychain>, CliError> {
    let store = apple_native_keyring_store::keychain::Store::new()
        .map_err(|e| CliError::keychain(format!("keychain: {e}")))?;
    Ok(Box::new(StoreKeychain {
        name: "keychain",
        store,
    }))
}

#[cfg(target_os = "windows")]
fn platform() -> Result<Box<dyn Keychain>, CliError> {
    let store = windows_native_keyring_store::Store::new()
        .map_err(|e| CliError::keychain(format!("credential manager: {e}")))?;
    Ok(Box::new(StoreKeychain {
        name: "windows",
        store,
    }))
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn platform() -> Result<Box<dyn Keychain>, CliError> {
    Err(CliError::keychain(
        "no platform credential store here: use --insecure-keyring",
    ))
}

/// A keyring-core credential store.
struct StoreKeychain<S: CredentialStoreApi + Send + Sync> {
    name: &'static str,
    store: Arc<S>,
}

impl<S: CredentialStoreApi + Send + Sync> StoreKeychain<S> {
    fn entry(&self, service: &str, key: &str) -> Result<keyring_core::Entry, CliError> {
        self.store
            .build(service, key, None)
            .map_err(|e| CliError::keychain(format!("{}: {e}", self.name)))
    }
}

impl<S: CredentialStoreApi + Send + Sync> Keychain for StoreKeychain<S> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn get(&self, service: &str, key: &str) -> Result<Option<String>, CliError> {
        match self.entry(service, key)?.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(CliError::keychain(format!("{}: {e}", self.name))),
        }
    }
    fn set(&self, service: &str, key: &str, value: &str) -> Result<(), CliError> {
        self.entry(service, key)?
            .set_password(value)
            .map_err(|e| CliError::keychain(format!("{}: {e}", self.name)))
    }
    fn delete(&self, service: &str, key: &str) -> Result<(), CliError> {
        match self.entry(service, key)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(CliError::keychain(format!("{}: {e}", self.name))),
        }
    }
}

/// The opt-in file store: one AES-256-GCM sealed JSON map in `secrets.enc`,
/// its key in `secrets.key` beside it, both 0600. It keeps secrets off the
/// disk in plaintext and away from other users, not from this user.
pub struct FileKeychain {
    data: PathBuf,
    lock: PathBuf,
    key: LessSafeKey,
}

/// Every file-store operation runs under one lock: all connections share
/// the file, so unlocked read-change-write cycles would lose updates.
struct StoreLock(#[allow(dead_code)] std::fs::File);

fn store_lock(path: &Path) -> Result<StoreLock, CliError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| CliError::keychain(format!("cannot open {}: {e}", path.display())))?;
    f.lock()
        .map_err(|e| CliError::keychain(format!("cannot lock {}: {e}", path.display())))?;
    Ok(StoreLock(f))
}

fn keychain_err(e: CliError) -> CliError {
    CliError::keychain(e.message)
}

impl FileKeychain {
    pub fn open(dir: &Path) -> Result<Self, CliError> {
        create_private_dir(dir).map_err(keychain_err)?;
        let lock = dir.join("secrets.lock");
        // The first two processes must not each make a key.
        let _held = store_lock(&lock)?;
        let key_path = dir.join("secrets.key");
        let raw = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k,
            Ok(_) => {
                return Err(CliError::keychain(format!(
                    "{} is not a 32-byte key",
                    key_path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = vec![0u8; 32];
                SystemRandom::new()
                    .fill(&mut k)
                    .map_err(|_| CliError::keychain("no randomness for a key"))?;
                write_private(&key_path, &k).map_err(keychain_err)?;
                k
            }
            Err(e) => {
                return Err(CliError::keychain(format!(
                    "cannot read {}: {e}",
                    key_path.display()
                )))
            }
        };
        let key = UnboundKey::new(&AES_256_GCM, &raw)
            .map_err(|_| CliError::keychain("bad file-store key"))?;
        Ok(Self {
            data: dir.join("secrets.enc"),
            lock,
            key: LessSafeKey::new(key),
        })
    }

    fn load(&self) -> Result<BTreeMap<String, String>, CliError> {
        let sealed = match std::fs::read(&self.data) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(CliError::keychain(format!(
                    "cannot read the file store: {e}"
                )))
            }
        };
        if sealed.len() < 12 {
            return Err(CliError::keychain("the file store is damaged"));
        }
        let (nonce, rest) = sealed.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CliError::keychain("the file store is damaged"))?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(b"tessera-cli-secrets"), &mut buf)
            .map_err(|_| CliError::keychain("the file store does not open with its key"))?;
        serde_json::from_slice(plain).map_err(|_| CliError::keychain("the file store is damaged"))
    }

    fn store(&self, map: &BTreeMap<String, String>) -> Result<(), CliError> {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CliError::keychain("no randomness for a nonce"))?;
        let mut buf = serde_json::to_vec(map).map_err(|e| CliError::other(e.to_string()))?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(b"tessera-cli-secrets"),
                &mut buf,
            )
            .map_err(|_| CliError::keychain("cannot seal the file store"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        write_private(&self.data, &out).map_err(keychain_err)
    }
}

fn file_key(service: &str, key: &str) -> String {
    format!("{service}\u{1f}{key}")
}

impl Keychain for FileKeychain {
    fn name(&self) -> &'static str {
        "file"
    }
    fn get(&self, service: &str, key: &str) -> Result<Option<String>, CliError> {
        let _held = store_lock(&self.lock)?;
        Ok(self.load()?.remove(&file_key(service, key)))
    }
    fn set(&self, service: &str, key: &str, value: &str) -> Result<(), CliError> {
        let _held = store_lock(&self.lock)?;
        let mut map = self.load()?;
        map.insert(file_key(service, key), value.to_string());
        self.store(&map)
    }
    fn delete(&self, service: &str, key: &str) -> Result<(), CliError> {
        let _held = store_lock(&self.lock)?;
        let mut map = self.load()?;
        if map.remove(&file_key(service, key)).is_some() {
            self.store(&map)?;
        }
        Ok(())
    }
}
