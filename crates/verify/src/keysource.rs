//! Where verifying keys come from: an issuer's JWKS over HTTP (cached,
//! refetched on an unknown `kid` at most once per interval), or a fixed set.

use crate::verifier::VerifyError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use tessera_keys::{JwkSet, VerifyingKey};

#[async_trait]
pub trait KeySource: Send + Sync {
    /// The key a token names (`kid`), or `None` if it is unknown.
    async fn key(&self, kid: Option<&str>) -> Result<Option<VerifyingKey>, VerifyError>;
}

/// A fixed set of keys. With one key, tokens without a `kid` use it.
pub struct StaticKeys(Vec<VerifyingKey>);

impl StaticKeys {
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self(keys)
    }
}

#[async_trait]
impl KeySource for StaticKeys {
    async fn key(&self, kid: Option<&str>) -> Result<Option<VerifyingKey>, VerifyError> {
        Ok(match kid {
            Some(kid) => self.0.iter().find(|k| k.kid() == kid).cloned(),
            None if self.0.len() == 1 => self.0.first().cloned(),
            None => None,
        })
    }
}

struct Cache {
    keys: HashMap<String, VerifyingKey>,
    /// Last successful fetch.
    fetched_at: Option<Instant>,
    /// Last attempt, successful or not: refetches are limited by this.
    attempted_at: Option<Instant>,
}

/// A JWKS larger than this is refused.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// An issuer's JWKS, fetched over HTTP(S). Keys are parsed once per fetch.
/// At most one fetch is attempted per `min_refetch`, failed attempts
/// included, so neither made-up key ids nor an issuer outage become a
/// request storm. The set is refetched when older than `max_age` (so retired
/// keys go), and a key already trusted keeps working while the issuer is
/// unreachable (stale-if-error).
pub struct JwksKeySource {
    url: String,
    http: reqwest::Client,
    min_refetch: Duration,
    max_age: Duration,
    cache: RwLock<Cache>,
    fetch: tokio::sync::Mutex<()>,
}

impl JwksKeySource {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            min_refetch: Duration::from_secs(10),
            max_age: Duration::from_secs(300),
            cache: RwLock::new(Cache {
                keys: HashMap::new(),
                fetched_at: None,
                attempted_at: None,
            }),
            fetch: tokio::sync::Mutex::new(()),
        }
    }

    /// The JWKS of a Keycloak-layout issuer (`<issuer>/protocol/openid-connect/certs`).
    pub fn for_keycloak_issuer(issuer: &str) -> Self {
        Self::new(format!(
            "{}/protocol/openid-connect/certs",
            issuer.trim_end_matches('/')
        ))
    }

    pub fn min_refetch(mut self, d: Duration) -> Self {
        self.min_refetch = d;
        self
    }

    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }

    /// The key, the last successful fetch and the last attempt.
    fn lookup(
        &self,
        kid: Option<&str>,
    ) -> (Option<VerifyingKey>, Option<Instant>, Option<Instant>) {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let key = match kid {
            Some(kid) => cache.keys.get(kid).cloned(),
            None if cache.keys.len() == 1 => cache.keys.values().next().cloned(),
            None => None,
        };
        (key, cache.fetched_at, cache.attempted_at)
    }

    async fn refetch(&self) -> Result<(), VerifyError> {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .attempted_at = Some(Instant::now());
        let unavailable = |e: String| VerifyError::KeysUnavailable(format!("{}: {e}", self.url));
        let res = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !res.status().is_success() {
            return Err(unavailable(format!("HTTP {}", res.status())));
        }
        if res
            .content_length()
            .is_some_and(|n| n as usize > MAX_JWKS_BYTES)
        {
            return Err(unavailable("JWKS too large".into()));
        }
        let body = res.bytes().await.map_err(|e| unavailable(e.to_string()))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(unavailable("JWKS too large".into()));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| unavailable(e.to_string()))?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| match VerifyingKey::from_jwk(jwk) {
                Ok(k) => Some((jwk.kid.clone(), k)),
                Err(e) => {
                    tracing::debug!(kid = %jwk.kid, error = %e, "skipping unusable JWK");
                    None
                }
            })
            .collect();
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.keys = keys;
        cache.fetched_at = Some(Instant::now());
        Ok(())
    }
}

#[async_trait]
impl KeySource for JwksKeySource {
    async fn key(&self, kid: Option<&str>) -> Result<Option<VerifyingKey>, VerifyError> {
        let (key, fetched, _) = self.lookup(kid);
        if key.is_some() && fetched.is_some_and(|t| t.elapsed() < self.max_age) {
            return Ok(key);
        }
        let _one_fetch_at_a_time = self.fetch.lock().await;
        // Someone else may have fetched while we waited.
        let (key, fetched, attempted) = self.lookup(kid);
        if key.is_some() && fetched.is_some_and(|t| t.elapsed() < self.max_age) {
            return Ok(key);
        }
        if attempted.is_some_and(|t| t.elapsed() < self.min_refetch) {
            if key.is_none() && fetched.is_none() {
                // The issuer has not answered yet: that is an outage, not an unknown key.
                return Err(VerifyError::KeysUnavailable(format!(
                    "{}: no successful fetch yet",
                    self.url
                )));
            }
            return Ok(key);
        }
        match self.refetch().await {
            Ok(()) => Ok(self.lookup(kid).0),
            Err(e) if key.is_some() => {
                tracing::warn!(error = %e, "JWKS refetch failed; using cached keys");
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }
}
