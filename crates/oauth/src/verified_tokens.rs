//! Access tokens whose signature this node has checked. A resource server
//! introspects the same token again and again while it lives, and checking
//! an ES256 signature was half of introspection's time
//! (`bench/profiles/introspection-es256.svg`). So a token that verified is
//! remembered by the SHA-256 of its exact text, with the realm and key that
//! verified it and the claims it carries, until it expires.
//!
//! Only the signature check is skipped on a hit: the key must still be one
//! the realm verifies with (a retired key refuses its tokens at once), and
//! everything else (issuer, kind, expiry, the session and the client) is
//! checked as for any token. A token that differs in one byte has another
//! hash and is verified in full. At most `MAX` tokens are held; when full,
//! the expired ones go, and if none has expired, all of them.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use tessera_core::claims::AccessClaims;

/// Tokens held at most.
const MAX: usize = 10_000;

struct Entry {
    realm_id: String,
    kid: String,
    claims: AccessClaims,
}

#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<[u8; 32], Entry>>,
    hits: AtomicU64,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokens {
    /// The claims of `token` if this node verified it with `kid` of realm
    /// `realm_id`.
    pub fn get(&self, realm_id: &str, kid: &str, token: &str) -> Option<AccessClaims> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&digest(token))?;
        if entry.realm_id != realm_id || entry.kid != kid {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(entry.claims.clone())
    }

    /// Remembers that `token` verified with `kid` of realm `realm_id`,
    /// carrying `claims` (valid until `claims.exp`, Unix seconds; `now` too).
    pub fn keep(&self, realm_id: &str, kid: &str, token: &str, claims: &AccessClaims, now: i64) {
        if claims.exp <= now {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX {
            entries.retain(|_, e| e.claims.exp > now);
            if entries.len() >= MAX {
                entries.clear();
            }
        }
        entries.insert(
            digest(token),
            Entry {
                realm_id: realm_id.to_string(),
                kid: kid.to_string(),
                claims: claims.clone(),
            },
        );
    }

    /// Signature checks saved so far (for tests and curiosity).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}
