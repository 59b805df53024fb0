//! The master key: seals signing keys at rest (AES-256-GCM) and derives
//! server-generated client secrets (HMAC-SHA256), so neither needs to be
//! stored in the clear.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use std::fmt;
use std::io::Write;
use std::path::Path;
use tessera_core::secret::random_bytes;

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master key must be 32 bytes, base64 or hex encoded")]
    BadEncoding,
    #[error("cannot read or create the master key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the master key file {0} is readable by other users; run `chmod 600` on it")]
    Permissions(String),
    #[error("sealed data is corrupt or was sealed with another master key")]
    Unseal,
}

/// 32 secret bytes. `Debug` is redacted.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        k.copy_from_slice(&random_bytes(32));
        Self(k)
    }

    /// Parses `TESSERA_MASTER_KEY`: 32 bytes as base64 (standard or URL-safe)
    /// or 64 hex digits.
    pub fn parse(encoded: &str) -> Result<Self, MasterKeyError> {
        let s = encoded.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(s).map_err(|_| MasterKeyError::BadEncoding)?
        } else {
            STANDARD
                .decode(s)
                .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
                .map_err(|_| MasterKeyError::BadEncoding)?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::BadEncoding)?;
        Ok(Self(arr))
    }

    /// Reads the key file, or creates it with mode 0600 on first start.
    /// Refuses a file that group or others can read.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path)?;
                Self::parse(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path).map_err(io)?;
                f.write_all(STANDARD.encode(key.0).as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the key id) so a
    /// sealed blob cannot be swapped onto another record. Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let key = self.aead_key();
        let nonce_bytes = random_bytes(NONCE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&nonce_bytes);
        let mut in_out = plaintext.to_vec();
        // AES-GCM sealing only fails for inputs over ~64 GiB.
        #[allow(clippy::expect_used)]
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut in_out,
        )
        .expect("AES-GCM seal");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&in_out);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        if sealed.len() < NONCE_LEN {
            return Err(MasterKeyError::Unseal);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| MasterKeyError::Unseal)?;
        let mut buf = ct.to_vec();
        let plain = self
            .aead_key()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| MasterKeyError::Unseal)?;
        Ok(plain.to_vec())
    }

    /// A deterministic secret for `context`: HMAC-SHA256(master, context),
    /// base64url. Used for server-generated client secrets, which the
    /// database stores only as a hash yet the Admin API can show again.
    pub fn derive_secret(&self, context: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        URL_SAFE_NO_PAD.encode(hmac::sign(&key, context.as_bytes()).as_ref())
    }

    /// A subkey for one purpose (HMAC-SHA256(master, "key:" ‖ purpose)), so
    /// data sealed for one feature never opens under another's key.
    pub fn derive_key(&self, purpose: &str) -> MasterKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(hmac::sign(&key, format!("key:{purpose}").as_bytes()).as_ref());
        MasterKey(bytes)
    }

    fn aead_key(&self) -> LessSafeKey {
        // 32 bytes is exactly AES-256's key length, so this cannot fail.
        #[allow(clippy::expect_used)]
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte AES key"))
    }
}

fn check_private(path: &Path) -> Result<(), MasterKeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(MasterKeyError::Permissions(path.display().to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let k = MasterKey::generate();
        let sealed = k.seal("kid-1", b"private");
        assert_eq!(k.open("kid-1", &sealed).expect("opens"), b"private");
        assert!(k.open("kid-2", &sealed).is_err(), "context is bound");
        assert!(MasterKey::generate().open("kid-1", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open("kid-1", &tampered).is_err());
    }

    #[test]
    fn parse_accepts_base64_and_hex_only_of_32_bytes() {
        let k = MasterKey::generate();
        let b64 = STANDARD.encode(k.0);
        assert_eq!(MasterKey::parse(&b64).expect("b64").0, k.0);
        assert_eq!(MasterKey::parse(&hex::encode(k.0)).expect("hex").0, k.0);
        assert!(MasterKey::parse("c2hvcnQ=").is_err());
        assert!(MasterKey::parse("not base64 !!").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("tessera-mk-{}", uuid_like()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("master.key");
        let a = MasterKey::load_or_create(&path).expect("create");
        let b = MasterKey::load_or_create(&path).expect("reuse");
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(matches!(
                MasterKey::load_or_create(&path),
                Err(MasterKeyError::Permissions(_))
            ));
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    fn uuid_like() -> String {
        hex::encode(random_bytes(8))
    }

    #[test]
    fn derived_secrets_are_stable_and_distinct() {
        let k = MasterKey::generate();
        assert_eq!(k.derive_secret("a:1"), k.derive_secret("a:1"));
        assert_ne!(k.derive_secret("a:1"), k.derive_secret("a:2"));
    }
}
