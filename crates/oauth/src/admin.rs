//! Administration: realms, clients, users, sessions and signing keys, with
//! the side effects each change carries (a disabled client or user loses
//! its sessions, a deleted realm its cached keys, a new algorithm a new
//! key). The Admin REST API and the `tessera admin` CLI call these; the
//! first-start bootstrap is in `provision.rs`.

use crate::keyring::{KeyCache, RealmKeys};
use crate::password::PasswordHasher;
use crate::{ClientAuth, Failure, Sessions};
use std::sync::Arc;
use tessera_core::time::now_ms;
use tessera_core::{Client, Realm, Secret, Session, TokenHash, User};
use tessera_store::{ClientStore, RealmStore, SessionStore, StoreError, UserQuery, UserStore};

pub use crate::provision::{ADMIN_ROLE, MASTER_REALM};

type Result<T> = std::result::Result<T, Failure>;

#[derive(Clone)]
pub struct Administration {
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) realm_db: Arc<dyn RealmStore>,
    pub(crate) client_db: Arc<dyn ClientStore>,
    pub(crate) user_db: Arc<dyn UserStore>,
    pub(crate) session_db: Arc<dyn SessionStore>,
    pub(crate) passwords: Arc<PasswordHasher>,
    pub(crate) sessions: Sessions,
    pub(crate) clients: ClientAuth,
}

impl Administration {
    /// Whether the `master` user `user_id` may use the Admin API. Roles are
    /// read from the database, not the token, so removing the role takes
    /// effect before the token expires. `None`: no such user.
    pub async fn is_administrator(&self, master: &Realm, user_id: &str) -> Result<Option<bool>> {
        Ok(self
            .user_db
            .user(&master.id, user_id)
            .await?
            .map(|u| u.enabled && u.roles.iter().any(|r| r == ADMIN_ROLE)))
    }

    // ---- realms ----

    /// A realm by name, disabled ones included.
    pub async fn realm(&self, name: &str) -> Result<Option<Realm>> {
        Ok(self.realm_db.realm_by_name(name).await?)
    }

    pub async fn list_realms(&self) -> Result<Vec<Realm>> {
        Ok(self.realm_db.list_realms().await?)
    }

    /// Stores the changed realm; a new algorithm needs a new key, so the key
    /// rotates, keeping the old one published until its tokens expire.
    pub async fn update_realm(&self, realm: &Realm, old: &Realm) -> Result<()> {
        self.realm_db.update_realm(realm).await?;
        if realm.signing_alg != old.signing_alg {
            self.keys.rotate(realm).await?;
        }
        if old.enabled && !realm.enabled {
            self.end_realm_sessions(realm).await?;
        }
        Ok(())
    }

    /// Deletes the realm with everything in it, and forgets its keys. Its
    /// sessions are ended first, so that their sockets are cut (deleting
    /// the rows alone would announce nothing).
    pub async fn delete_realm(&self, realm: &Realm) -> Result<()> {
        self.end_realm_sessions(realm).await?;
        self.realm_db.delete_realm(&realm.id).await?;
        self.keys.forget(&realm.id);
        Ok(())
    }

    /// A disabled (or deleted) realm keeps no live sessions: every client's
    /// are revoked and announced, which cuts their sockets on every node
    /// and empties the live-session caches, as for a disabled client.
    async fn end_realm_sessions(&self, realm: &Realm) -> Result<()> {
        for client in self.client_db.list_clients(&realm.id).await? {
            self.sessions.end_client_sessions(&client).await?;
        }
        Ok(())
    }

    /// The realm's signing keys (generating the first if it has none).
    pub async fn realm_keys(&self, realm: &Realm) -> Result<Arc<RealmKeys>> {
        Ok(self.keys.realm_keys(realm).await?)
    }

    /// A new active key; the old one stays published until its tokens expire.
    pub async fn rotate_keys(&self, realm: &Realm) -> Result<Arc<RealmKeys>> {
        Ok(self.keys.rotate(realm).await?)
    }

    // ---- clients ----

    pub async fn list_clients(&self, realm: &Realm) -> Result<Vec<Client>> {
        Ok(self.client_db.list_clients(&realm.id).await?)
    }

    /// A client by its internal id.
    pub async fn client(&self, realm: &Realm, id: &str) -> Result<Option<Client>> {
        Ok(self.client_db.client(&realm.id, id).await?)
    }

    /// A client by its `client_id`.
    pub async fn client_by_client_id(
        &self,
        realm: &Realm,
        client_id: &str,
    ) -> Result<Option<Client>> {
        Ok(self
            .client_db
            .client_by_client_id(&realm.id, client_id)
            .await?)
    }

    /// Fails with `Conflict` when the `client_id` is taken.
    pub async fn create_client(&self, client: &Client) -> Result<()> {
        Ok(self.client_db.create_client(client).await?)
    }

    /// Stores the client. A disabled client keeps no sessions: it is saved
    /// disabled first, so no new session can start, then every session it
    /// has ends, on every update that leaves it disabled (sessions of a
    /// grant that raced the switch, or of an earlier failed attempt), so
    /// enabling it later revives none.
    pub async fn update_client(&self, client: &Client) -> Result<()> {
        self.client_db.update_client(client).await?;
        if !client.enabled {
            self.sessions.end_client_sessions(client).await?;
        }
        Ok(())
    }

    /// Stores a client whose secret changed (nothing else about it did).
    pub async fn store_secret(&self, client: &Client) -> Result<()> {
        Ok(self.client_db.update_client(client).await?)
    }

    /// Deletes the client; its sessions end first, so their sockets are told.
    pub async fn delete_client(&self, client: &Client) -> Result<()> {
        self.sessions.end_client_sessions(client).await?;
        Ok(self
            .client_db
            .delete_client(&client.realm_id, &client.id)
            .await?)
    }

    /// The secret the server generated for `client` at its current
    /// generation (Keycloak's `GET .../client-secret` shows it again).
    pub fn generated_secret(&self, client: &Client) -> String {
        self.clients.generated_client_secret(client)
    }

    /// Moves `client` to its next generated secret and sets its hash (the
    /// caller stores the client); returns the secret.
    pub fn next_secret(&self, client: &mut Client) -> String {
        client.secret_generation += 1;
        client.secret_generated = true;
        let secret = self.generated_secret(client);
        client.secret_hash = Some(TokenHash::of(&secret));
        secret
    }

    // ---- users ----

    pub async fn list_users(&self, realm: &Realm, query: &UserQuery) -> Result<Vec<User>> {
        Ok(self.user_db.list_users(&realm.id, query).await?)
    }

    pub async fn count_users(&self, realm: &Realm) -> Result<i64> {
        Ok(self.user_db.count_users(&realm.id).await?)
    }

    pub async fn user(&self, realm: &Realm, id: &str) -> Result<Option<User>> {
        Ok(self.user_db.user(&realm.id, id).await?)
    }

    pub async fn user_by_username(&self, realm: &Realm, username: &str) -> Result<Option<User>> {
        Ok(self.user_db.user_by_username(&realm.id, username).await?)
    }

    /// The argon2id hash of a new password.
    pub async fn hash_password(&self, password: &Secret<String>) -> Result<String> {
        Ok(self.passwords.hash(password).await?)
    }

    /// Fails with `Conflict` when the username (or email) is taken.
    pub async fn create_user(&self, user: &User) -> Result<()> {
        Ok(self.user_db.create_user(user).await?)
    }

    /// Stores the user; a disabled user keeps no live sessions.
    pub async fn update_user(&self, realm: &Realm, user: &User) -> Result<()> {
        self.user_db.update_user(user).await?;
        if !user.enabled {
            self.end_user_sessions(realm, &user.id).await?;
        }
        Ok(())
    }

    /// Deletes the user; their sessions end first, so their sockets hear of it.
    pub async fn delete_user(&self, realm: &Realm, user: &User) -> Result<()> {
        self.end_user_sessions(realm, &user.id).await?;
        Ok(self.user_db.delete_user(&realm.id, &user.id).await?)
    }

    /// Sets a new password (hashed here).
    pub async fn set_password(
        &self,
        realm: &Realm,
        user: &User,
        password: &Secret<String>,
        temporary: bool,
    ) -> Result<()> {
        let hash = self.hash_password(password).await?;
        Ok(self
            .user_db
            .set_password(&realm.id, &user.id, &hash, temporary)
            .await?)
    }

    // ---- sessions ----

    /// The user's active sessions, each with its client.
    pub async fn user_sessions(
        &self,
        realm: &Realm,
        user: &User,
    ) -> Result<Vec<(Session, Option<Client>)>> {
        let mut out = Vec::new();
        for s in self
            .session_db
            .user_sessions(&realm.id, &user.id, now_ms())
            .await?
        {
            let client = self.client_db.client(&realm.id, &s.client_id).await?;
            out.push((s, client));
        }
        Ok(out)
    }

    /// Ends every session of the user; returns how many ended.
    pub async fn end_user_sessions(&self, realm: &Realm, user_id: &str) -> Result<usize> {
        Ok(self.sessions.end_user_sessions(realm, user_id).await?)
    }

    /// Ends one active session of the realm; `NotFound` if there is none.
    pub async fn end_session(&self, realm: &Realm, session_id: &str) -> Result<()> {
        let session = self
            .session_db
            .session(session_id)
            .await?
            .filter(|s| s.realm_id == realm.id && s.is_active(now_ms()))
            .ok_or(StoreError::NotFound)?;
        self.sessions.end_session(&session.id).await?;
        Ok(())
    }
}
