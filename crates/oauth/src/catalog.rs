//! The read path's cache of realms and clients. Every token request looks
//! its realm and client up; both change only when an administrator changes
//! them, so they are kept in memory instead of asked of the database (and,
//! on SQLite, of its connection thread) each time.
//!
//! Coherence: `Catalog` implements `RealmStore` and `ClientStore` over the
//! real store and is what every service holds, so every write made through
//! a service passes through it and empties the cache at once: on the node
//! that made the change, a disabled client or realm is refused by the next
//! request. Other nodes (and `tessera admin` working on the database
//! directly) are seen within `OAuthConfig::catalog_ttl_ms` (default 2 s),
//! the age at which an entry is read again. A lookup that raced a write
//! does not put the value it read back (a generation counter), and only
//! found records are kept, so a realm or client created elsewhere is never
//! "not found" for longer than the database says.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tessera_core::{Client, Realm};
use tessera_store::{ClientStore, RealmStore, Result};

/// Entries kept at most per map; past it the map starts afresh.
const MAX_ENTRIES: usize = 10_000;

struct Entry<T> {
    value: T,
    loaded: Instant,
}

/// A map of recently read records, emptied by any write.
struct Cache<K, T> {
    map: RwLock<HashMap<K, Entry<T>>>,
}

impl<K: std::hash::Hash + Eq, T: Clone> Cache<K, T> {
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, ttl: Duration) -> Option<T> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|e| e.loaded.elapsed() < ttl)
            .map(|e| e.value.clone())
    }

    fn put(&self, key: K, value: T) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                value,
                loaded: Instant::now(),
            },
        );
    }

    fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

pub struct Catalog {
    realm_db: Arc<dyn RealmStore>,
    client_db: Arc<dyn ClientStore>,
    ttl: Duration,
    /// Bumped by every write, before and after it reaches the store.
    generation: AtomicU64,
    realms: Cache<String, Realm>,
    clients: Cache<(String, String), Client>,
    client_ids: Cache<(String, String), Client>,
}

impl Catalog {
    pub fn new(
        realm_db: Arc<dyn RealmStore>,
        client_db: Arc<dyn ClientStore>,
        ttl: Duration,
    ) -> Self {
        Self {
            realm_db,
            client_db,
            ttl,
            generation: AtomicU64::new(0),
            realms: Cache::new(),
            clients: Cache::new(),
            client_ids: Cache::new(),
        }
    }

    /// Forgets everything (a write happened on this node).
    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.realms.clear();
        self.clients.clear();
        self.client_ids.clear();
    }

    /// Runs a write; the cache is emptied before (so no reader keeps an old
    /// copy while it runs) and after it (so none that read meanwhile does).
    async fn write<T>(&self, op: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.invalidate();
        let out = op.await;
        self.invalidate();
        out
    }

    /// Reads through `cache`: a fresh entry, or the store's answer, kept
    /// when found and no write ran meanwhile.
    async fn read<K: std::hash::Hash + Eq, T: Clone>(
        &self,
        cache: &Cache<K, T>,
        key: K,
        load: impl std::future::Future<Output = Result<Option<T>>>,
    ) -> Result<Option<T>> {
        if let Some(hit) = cache.get(&key, self.ttl) {
            return Ok(Some(hit));
        }
        let before = self.generation.load(Ordering::SeqCst);
        let found = load.await?;
        if let Some(v) = &found {
            if self.generation.load(Ordering::SeqCst) == before {
                cache.put(key, v.clone());
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl RealmStore for Catalog {
    async fn create_realm(&self, realm: &Realm) -> Result<()> {
        self.write(self.realm_db.create_realm(realm)).await
    }

    async fn realm_by_name(&self, name: &str) -> Result<Option<Realm>> {
        self.read(
            &self.realms,
            name.to_string(),
            self.realm_db.realm_by_name(name),
        )
        .await
    }

    async fn list_realms(&self) -> Result<Vec<Realm>> {
        self.realm_db.list_realms().await
    }

    async fn update_realm(&self, realm: &Realm) -> Result<()> {
        self.write(self.realm_db.update_realm(realm)).await
    }

    async fn delete_realm(&self, realm_id: &str) -> Result<()> {
        self.write(self.realm_db.delete_realm(realm_id)).await
    }
}

#[async_trait]
impl ClientStore for Catalog {
    async fn create_client(&self, client: &Client) -> Result<()> {
        self.write(self.client_db.create_client(client)).await
    }

    async fn client(&self, realm_id: &str, id: &str) -> Result<Option<Client>> {
        let key = (realm_id.to_string(), id.to_string());
        self.read(&self.clients, key, self.client_db.client(realm_id, id))
            .await
    }

    async fn client_by_client_id(&self, realm_id: &str, client_id: &str) -> Result<Option<Client>> {
        let key = (realm_id.to_string(), client_id.to_string());
        self.read(
            &self.client_ids,
            key,
            self.client_db.client_by_client_id(realm_id, client_id),
        )
        .await
    }

    async fn list_clients(&self, realm_id: &str) -> Result<Vec<Client>> {
        self.client_db.list_clients(realm_id).await
    }

    async fn update_client(&self, client: &Client) -> Result<()> {
        self.write(self.client_db.update_client(client)).await
    }

    async fn delete_client(&self, realm_id: &str, id: &str) -> Result<()> {
        self.write(self.client_db.delete_client(realm_id, id)).await
    }
}
