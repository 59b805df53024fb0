//! What provider connect and sign-up (the `connect` crate) may do to
//! Tessera's own data: authorization requests in flight, sign-ups, users'
//! provider connections, finding and creating users, and minting the
//! tokens a finished sign-up hands out. The `connect` crate holds this
//! handle and nothing wider; the upstream HTTP round trips, sealing and
//! pages stay there.

use crate::issue::Issue;
use crate::keyring::KeyCache;
use crate::{Minter, OAuthConfig, Realms, Sessions, TokenResponse};
use std::sync::Arc;
use tessera_core::{
    Client, OAuthError, ProviderConnection, ProviderState, Realm, RefreshTokenRecord, Session,
    Signup, TokenHash, User,
};
use tessera_keys::MasterKey;
use tessera_store::{ClientStore, ConnectStore, Result, UserQuery, UserStore};

#[derive(Clone)]
pub struct ProviderAccounts {
    pub(crate) config: Arc<OAuthConfig>,
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) connect_db: Arc<dyn ConnectStore>,
    pub(crate) user_db: Arc<dyn UserStore>,
    pub(crate) client_db: Arc<dyn ClientStore>,
    pub(crate) realms: Realms,
    pub(crate) sessions: Sessions,
    pub(crate) minter: Minter,
}

impl ProviderAccounts {
    /// The key provider state, links and sealed provider tokens derive from.
    pub fn master_key(&self) -> &MasterKey {
        self.keys.master()
    }

    /// Base URL the server is reached at.
    pub fn public_url(&self) -> &str {
        &self.config.public_url
    }

    /// An enabled realm by name (404 otherwise).
    pub async fn realm(&self, name: &str) -> std::result::Result<Realm, OAuthError> {
        self.realms.realm(name).await
    }

    /// Sends `event` to every socket of the user (of the realm `realm_id`),
    /// on any node.
    pub fn publish_to_user(
        &self,
        realm_id: &str,
        user_id: &str,
        event: &str,
        data: serde_json::Value,
    ) {
        self.sessions
            .publish_to_user(realm_id, user_id, event, data)
    }

    /// Signs a finished sign-up's tokens.
    pub async fn token_response(
        &self,
        issue: Issue<'_>,
    ) -> std::result::Result<TokenResponse, OAuthError> {
        self.minter.token_response(issue).await
    }

    pub async fn client(&self, realm_id: &str, id: &str) -> Result<Option<Client>> {
        self.client_db.client(realm_id, id).await
    }

    pub async fn client_by_client_id(
        &self,
        realm_id: &str,
        client_id: &str,
    ) -> Result<Option<Client>> {
        self.client_db
            .client_by_client_id(realm_id, client_id)
            .await
    }

    pub async fn user(&self, realm_id: &str, id: &str) -> Result<Option<User>> {
        self.user_db.user(realm_id, id).await
    }

    pub async fn list_users(&self, realm_id: &str, query: &UserQuery) -> Result<Vec<User>> {
        self.user_db.list_users(realm_id, query).await
    }

    /// Fails with `Conflict` when the username or email is taken.
    pub async fn create_user(&self, user: &User) -> Result<()> {
        self.user_db.create_user(user).await
    }

    pub async fn insert_provider_state(&self, state: &ProviderState) -> Result<()> {
        self.connect_db.insert_provider_state(state).await
    }

    /// Deletes the state and returns it if it had not expired by `now_ms`.
    /// Of concurrent callers exactly one gets it; a spent, expired or
    /// unknown state is `None`.
    pub async fn take_provider_state(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<ProviderState>> {
        self.connect_db.take_provider_state(id, now_ms).await
    }

    /// Fails with `Conflict` when the sign-up token was used before.
    pub async fn insert_signup(&self, signup: &Signup) -> Result<()> {
        self.connect_db.insert_signup(signup).await
    }

    pub async fn signup(&self, hash: &TokenHash) -> Result<Option<Signup>> {
        self.connect_db.signup(hash).await
    }

    /// Records the callback's outcome (the user, or the provider's error) on
    /// a sign-up that is still open and unexpired; false otherwise.
    pub async fn complete_signup(
        &self,
        hash: &TokenHash,
        user_id: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        self.connect_db
            .complete_signup(hash, user_id, error, now_ms)
            .await
    }

    /// Spends a sign-up that completed with a user and creates `session` in
    /// one commit; false (and nothing changes) if it is not completed, was
    /// spent or has expired. Of concurrent callers exactly one succeeds.
    pub async fn spend_signup(
        &self,
        hash: &TokenHash,
        now_ms: i64,
        session: &Session,
        first: &RefreshTokenRecord,
    ) -> Result<bool> {
        self.connect_db
            .spend_signup(hash, now_ms, session, first)
            .await
    }

    /// Creates or replaces the user's connection to `provider`. Fails with
    /// `Conflict` when that provider identity belongs to another user.
    pub async fn put_provider_connection(&self, connection: &ProviderConnection) -> Result<()> {
        self.connect_db.put_provider_connection(connection).await
    }

    /// Replaces the sealed tokens and expiry of an existing connection (a
    /// refresh); false, and nothing written, if it was disconnected.
    pub async fn update_provider_tokens(&self, connection: &ProviderConnection) -> Result<bool> {
        self.connect_db.update_provider_tokens(connection).await
    }

    pub async fn provider_connection(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<ProviderConnection>> {
        self.connect_db.provider_connection(user_id, provider).await
    }

    /// A user's connections, by provider name.
    pub async fn user_provider_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<ProviderConnection>> {
        self.connect_db.user_provider_connections(user_id).await
    }

    /// The user a provider identity is connected to.
    pub async fn provider_identity_user(
        &self,
        realm_id: &str,
        provider: &str,
        subject: &str,
    ) -> Result<Option<String>> {
        self.connect_db
            .provider_identity_user(realm_id, provider, subject)
            .await
    }

    /// Deletes the connection and returns what it held.
    pub async fn delete_provider_connection(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<ProviderConnection>> {
        self.connect_db
            .delete_provider_connection(user_id, provider)
            .await
    }
}
