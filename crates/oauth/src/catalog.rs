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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::Notify;

    /// A realm table in memory that counts its reads and can hold one read
    /// after it has looked (to let a write overtake it).
    #[derive(Default)]
    struct Table {
        realms: Mutex<HashMap<String, Realm>>,
        reads: AtomicU64,
        /// (reached, release)
        hold: Mutex<Option<Arc<(Notify, Notify)>>>,
    }

    #[async_trait]
    impl RealmStore for Table {
        async fn create_realm(&self, realm: &Realm) -> Result<()> {
            let mut m = self.realms.lock().expect("lock");
            m.insert(realm.name.clone(), realm.clone());
            Ok(())
        }
        async fn realm_by_name(&self, name: &str) -> Result<Option<Realm>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let found = self.realms.lock().expect("lock").get(name).cloned();
            let hold = self.hold.lock().expect("lock").take();
            if let Some(h) = hold {
                h.0.notify_one();
                h.1.notified().await;
            }
            Ok(found)
        }
        async fn list_realms(&self) -> Result<Vec<Realm>> {
            Ok(self
                .realms
                .lock()
                .expect("lock")
                .values()
                .cloned()
                .collect())
        }
        async fn update_realm(&self, realm: &Realm) -> Result<()> {
            self.create_realm(realm).await
        }
        async fn delete_realm(&self, realm_id: &str) -> Result<()> {
            self.realms
                .lock()
                .expect("lock")
                .retain(|_, r| r.id != realm_id);
            Ok(())
        }
    }

    #[async_trait]
    impl ClientStore for Table {
        async fn create_client(&self, _: &Client) -> Result<()> {
            Ok(())
        }
        async fn client(&self, _: &str, _: &str) -> Result<Option<Client>> {
            Ok(None)
        }
        async fn client_by_client_id(&self, _: &str, _: &str) -> Result<Option<Client>> {
            Ok(None)
        }
        async fn list_clients(&self, _: &str) -> Result<Vec<Client>> {
            Ok(Vec::new())
        }
        async fn update_client(&self, _: &Client) -> Result<()> {
            Ok(())
        }
        async fn delete_client(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
    }

    fn catalog(ttl_ms: u64) -> (Arc<Table>, Arc<Catalog>) {
        let table = Arc::new(Table::default());
        let catalog = Arc::new(Catalog::new(
            table.clone(),
            table.clone(),
            Duration::from_millis(ttl_ms),
        ));
        (table, catalog)
    }

    fn reads(t: &Table) -> u64 {
        t.reads.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn found_records_are_kept_until_a_write_or_their_age() {
        let (table, cat) = catalog(60_000);
        assert_eq!(cat.realm_by_name("r").await.expect("read"), None);
        assert_eq!(cat.realm_by_name("r").await.expect("read"), None);
        assert_eq!(reads(&table), 2, "not-found is never kept");

        let mut realm = Realm::new("r", 0);
        cat.create_realm(&realm).await.expect("create");
        cat.realm_by_name("r").await.expect("read");
        cat.realm_by_name("r").await.expect("read");
        assert_eq!(reads(&table), 3, "a found realm is kept");

        realm.enabled = false;
        cat.update_realm(&realm).await.expect("update");
        let seen = cat.realm_by_name("r").await.expect("read").expect("realm");
        assert!(!seen.enabled, "a write empties the cache at once");
        assert_eq!(reads(&table), 4);

        let (table, cat) = catalog(0);
        table
            .create_realm(&Realm::new("r", 0))
            .await
            .expect("create");
        cat.realm_by_name("r").await.expect("read");
        cat.realm_by_name("r").await.expect("read");
        assert_eq!(reads(&table), 2, "an entry past its age is read again");
    }

    #[tokio::test]
    async fn a_read_that_raced_a_write_is_not_kept() {
        let (table, cat) = catalog(60_000);
        let mut realm = Realm::new("r", 0);
        table.create_realm(&realm).await.expect("create");
        let gate = Arc::new((Notify::new(), Notify::new()));
        *table.hold.lock().expect("lock") = Some(gate.clone());

        // A read looks (and sees the realm enabled) ...
        let reader = {
            let cat = cat.clone();
            tokio::spawn(async move { cat.realm_by_name("r").await })
        };
        gate.0.notified().await;
        // ... an administrator disables it meanwhile ...
        realm.enabled = false;
        cat.update_realm(&realm).await.expect("update");
        gate.1.notify_one();
        let old = reader.await.expect("join").expect("read").expect("realm");
        assert!(old.enabled, "the racing read saw the old row");
        // ... and that old row is not what the next request gets.
        let next = cat.realm_by_name("r").await.expect("read").expect("realm");
        assert!(!next.enabled);
    }
}
