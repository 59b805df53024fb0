//! The signing-key cache. Keys are read from the store, the active private
//! key is unsealed and parsed once, and the JWKS document is rendered once per
//! key-set change. Requests only take a read lock.
//!
//! Freshness across nodes: a realm's entry is reloaded when it is older than
//! `RELOAD_EVERY` (another node may have rotated), when a retiring key's
//! visibility ends, or — at most once per `UNKNOWN_KID_BACKOFF` — when a token
//! names a key id we have not seen. Reloads parse only keys not parsed before.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tessera_core::model::KeyStatus;
use tessera_core::time::now_ms;
use tessera_core::{OAuthError, Realm, SigningAlg, SigningKeyRecord};
use tessera_keys::{JwkSet, MasterKey, SigningKey, VerifyingKey};
use tessera_store::{KeyStore, StoreError};

const RELOAD_EVERY: Duration = Duration::from_secs(30);
const UNKNOWN_KID_BACKOFF: Duration = Duration::from_secs(5);
/// Purpose of the keys that sign a realm's access and ID tokens.
pub const REALM_PURPOSE: &str = "realm";
/// Purpose of the dedicated RS512 key that signs Che machine tokens.
pub const MACHINE_PURPOSE: &str = "machine";
/// Clock skew allowed for when deciding how long a retired key stays published.
const RETIRE_SKEW_MS: i64 = 60_000;

/// One realm's parsed keys for one purpose.
pub struct RealmKeys {
    pub signer: Arc<SigningKey>,
    pub verifiers: HashMap<String, VerifyingKey>,
    /// `{"keys": [...]}`, rendered once.
    pub jwks_json: Arc<str>,
    /// Base64 SubjectPublicKeyInfo of the active key (Keycloak's realm `public_key`).
    pub public_key_b64: String,
    /// Records as loaded, newest first (for the Admin API key listing).
    pub records: Vec<SigningKeyRecord>,
    loaded_at: Instant,
    /// When the first retiring key drops out of the JWKS.
    next_expiry: Option<i64>,
}

impl RealmKeys {
    fn stale(&self) -> bool {
        self.loaded_at.elapsed() > RELOAD_EVERY || self.next_expiry.is_some_and(|t| t <= now_ms())
    }
}

type CacheKey = (String, &'static str);

pub struct KeyCache {
    store: Arc<dyn KeyStore>,
    master: MasterKey,
    entries: RwLock<HashMap<CacheKey, Arc<RealmKeys>>>,
    forced: std::sync::Mutex<HashMap<CacheKey, Instant>>,
    reload: tokio::sync::Mutex<()>,
}

impl KeyCache {
    pub fn new(store: Arc<dyn KeyStore>, master: MasterKey) -> Self {
        Self {
            store,
            master,
            entries: RwLock::new(HashMap::new()),
            forced: std::sync::Mutex::new(HashMap::new()),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The realm's token keys, generating the first key (in the realm's
    /// algorithm) if it has none. Read paths never rotate: that happens only
    /// in `rotate`, so a request holding a stale copy of the realm cannot
    /// undo an administrator's change.
    pub async fn realm_keys(&self, realm: &Realm) -> Result<Arc<RealmKeys>, OAuthError> {
        self.get(realm, REALM_PURPOSE, realm.signing_alg, false)
            .await
    }

    /// The realm's machine-token key (RS512, generated on first use).
    pub async fn machine_keys(&self, realm: &Realm) -> Result<Arc<RealmKeys>, OAuthError> {
        self.get(realm, MACHINE_PURPOSE, SigningAlg::RS512, false)
            .await
    }

    /// Finds the verifier for `kid`, reloading (rate-limited) if it is new.
    pub async fn verifier(
        &self,
        realm: &Realm,
        kid: &str,
    ) -> Result<Option<VerifyingKey>, OAuthError> {
        self.verifier_for(realm, REALM_PURPOSE, realm.signing_alg, kid)
            .await
    }

    /// Finds the machine-token verifier for `kid` (same reload rules).
    pub async fn machine_verifier(
        &self,
        realm: &Realm,
        kid: &str,
    ) -> Result<Option<VerifyingKey>, OAuthError> {
        self.verifier_for(realm, MACHINE_PURPOSE, SigningAlg::RS512, kid)
            .await
    }

    async fn verifier_for(
        &self,
        realm: &Realm,
        purpose: &'static str,
        alg: SigningAlg,
        kid: &str,
    ) -> Result<Option<VerifyingKey>, OAuthError> {
        let keys = self.get(realm, purpose, alg, false).await?;
        if let Some(v) = keys.verifiers.get(kid) {
            return Ok(Some(v.clone()));
        }
        let ck = (realm.id.clone(), purpose);
        let may_force = {
            let mut forced = self.forced.lock().unwrap_or_else(|p| p.into_inner());
            let recent = forced
                .get(&ck)
                .is_some_and(|t| t.elapsed() < UNKNOWN_KID_BACKOFF);
            if !recent {
                forced.insert(ck, Instant::now());
            }
            !recent
        };
        if !may_force {
            return Ok(None);
        }
        let keys = self.get(realm, purpose, alg, true).await?;
        Ok(keys.verifiers.get(kid).cloned())
    }

    /// Generates a new active key; the old one keeps verifying (and stays in
    /// the JWKS) until every token it signed can have expired.
    pub async fn rotate(&self, realm: &Realm) -> Result<Arc<RealmKeys>, OAuthError> {
        let record = self
            .new_record(realm, REALM_PURPOSE, realm.signing_alg)
            .await?;
        let visible_until = now_ms() + realm.access_token_lifespan_secs * 1000 + RETIRE_SKEW_MS;
        self.store
            .rotate_keys(&record, visible_until)
            .await
            .map_err(OAuthError::server_error)?;
        self.get(realm, REALM_PURPOSE, realm.signing_alg, true)
            .await
    }

    /// Drops a realm's cached keys (after realm deletion).
    pub fn forget(&self, realm_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|(id, _), _| id != realm_id);
    }

    async fn get(
        &self,
        realm: &Realm,
        purpose: &'static str,
        alg: SigningAlg,
        force: bool,
    ) -> Result<Arc<RealmKeys>, OAuthError> {
        let ck = (realm.id.clone(), purpose);
        if !force {
            if let Some(k) = self.cached(&ck) {
                if !k.stale() {
                    return Ok(k);
                }
            }
        }
        let _single_flight = self.reload.lock().await;
        let previous = self.cached(&ck);
        if let Some(k) = &previous {
            if !force && !k.stale() {
                return Ok(k.clone());
            }
        }
        let mut records = self.load_records(realm, purpose).await?;
        if !records.iter().any(|r| r.status == KeyStatus::Active) {
            let record = self.new_record(realm, purpose, alg).await?;
            match self.store.insert_key(&record).await {
                // Another node created the first key at the same moment (a
                // unique index allows one active key per realm and purpose): use theirs.
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(OAuthError::server_error(e)),
            }
            records = self.load_records(realm, purpose).await?;
        }
        let built = Arc::new(self.build(records, previous.as_deref())?);
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ck, built.clone());
        Ok(built)
    }

    fn cached(&self, ck: &CacheKey) -> Option<Arc<RealmKeys>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(ck)
            .cloned()
    }

    async fn load_records(
        &self,
        realm: &Realm,
        purpose: &str,
    ) -> Result<Vec<SigningKeyRecord>, OAuthError> {
        let now = now_ms();
        Ok(self
            .store
            .keys(&realm.id, purpose)
            .await
            .map_err(OAuthError::server_error)?
            .into_iter()
            .filter(|r| r.status == KeyStatus::Active || r.visible_until.is_some_and(|t| t > now))
            .collect())
    }

    async fn new_record(
        &self,
        realm: &Realm,
        purpose: &str,
        alg: SigningAlg,
    ) -> Result<SigningKeyRecord, OAuthError> {
        // RSA generation takes tens of milliseconds of CPU: keep it off the workers.
        let generated = tokio::task::spawn_blocking(move || tessera_keys::generate(alg))
            .await
            .map_err(OAuthError::server_error)?
            .map_err(OAuthError::server_error)?;
        Ok(SigningKeyRecord {
            sealed_private_key: self.master.seal(&generated.kid, &generated.pkcs8_der),
            kid: generated.kid,
            realm_id: realm.id.clone(),
            alg,
            purpose: purpose.to_string(),
            status: KeyStatus::Active,
            public_key_der: generated.spki_der,
            created_at: now_ms(),
            visible_until: None,
        })
    }

    fn build(
        &self,
        records: Vec<SigningKeyRecord>,
        previous: Option<&RealmKeys>,
    ) -> Result<RealmKeys, OAuthError> {
        let active = records
            .iter()
            .find(|r| r.status == KeyStatus::Active)
            .ok_or_else(|| OAuthError::server_error("realm has no active signing key"))?;
        let signer = match previous {
            Some(p) if p.signer.kid() == active.kid => p.signer.clone(),
            _ => {
                let der = self
                    .master
                    .open(&active.kid, &active.sealed_private_key)
                    .map_err(OAuthError::server_error)?;
                Arc::new(
                    SigningKey::from_pkcs8(active.kid.clone(), active.alg, &der)
                        .map_err(OAuthError::server_error)?,
                )
            }
        };
        let mut verifiers = HashMap::new();
        let mut jwks = JwkSet::default();
        for r in &records {
            let v = match previous.and_then(|p| p.verifiers.get(&r.kid)) {
                Some(v) => v.clone(),
                None => VerifyingKey::from_spki(r.kid.clone(), r.alg, &r.public_key_der)
                    .map_err(OAuthError::server_error)?,
            };
            jwks.keys.push(v.jwk());
            verifiers.insert(r.kid.clone(), v);
        }
        let public_key_b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&active.public_key_der)
        };
        let next_expiry = records.iter().filter_map(|r| r.visible_until).min();
        Ok(RealmKeys {
            signer,
            verifiers,
            jwks_json: Arc::from(serde_json::to_string(&jwks).map_err(OAuthError::server_error)?),
            public_key_b64,
            records,
            loaded_at: Instant::now(),
            next_expiry,
        })
    }
}
