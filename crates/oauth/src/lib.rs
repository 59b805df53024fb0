//! The token service: everything between a parsed protocol request and the
//! store. Grants (one file each), client authentication, token issuance and
//! verification, the signing-key cache, password hashing and login
//! throttling. API boundary: no HTTP types here; the `http` crate turns
//! requests into `Params` (plus the `Authorization` header, read by
//! `calling_client`, the one place clients authenticate) and `OAuthError`s
//! into responses.

pub mod browser;
pub mod client_auth;
pub mod config;
pub mod consent;
pub mod events;
pub mod gc;
pub mod grants;
pub mod issue;
pub mod keyring;
pub mod login;
pub mod params;
pub mod password;
pub mod provision;
pub mod self_service;
pub mod sessions;
pub mod throttle;
pub mod verify;

pub use client_auth::ClientCredentials;
pub use config::OAuthConfig;
pub use issue::TokenResponse;
pub use keyring::KeyCache;
pub use params::Params;

use std::sync::Arc;
use tessera_consent::{DidResolver, OfflineResolver};
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, Realm};
use tessera_store::Store;

/// The shared state of the token service. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct TokenService {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyCache>,
    pub passwords: Arc<password::PasswordHasher>,
    pub throttle: Arc<throttle::LoginThrottle>,
    pub config: Arc<OAuthConfig>,
    pub events: Arc<events::ServerEvents>,
    /// Finds the key behind a DID for consent logins.
    pub resolver: Arc<dyn DidResolver>,
}

impl TokenService {
    pub fn new(
        store: Arc<dyn Store>,
        master: tessera_keys::MasterKey,
        config: OAuthConfig,
    ) -> Self {
        let keys = Arc::new(KeyCache::new(store.clone(), master));
        Self {
            passwords: Arc::new(password::PasswordHasher::new(&config.password)),
            throttle: Arc::new(throttle::LoginThrottle::new(
                config.throttle.clone(),
                store.clone(),
            )),
            config: Arc::new(config),
            events: Arc::new(events::ServerEvents::default()),
            resolver: Arc::new(OfflineResolver),
            keys,
            store,
        }
    }

    /// Revokes one session and tells subscribers. Returns whether it was live.
    pub async fn end_session(&self, session_id: &str) -> Result<bool, OAuthError> {
        let ended = self
            .store
            .revoke_session(session_id, now_ms())
            .await
            .map_err(OAuthError::server_error)?;
        if let Some(user_id) = &ended {
            self.announce_ended(user_id, vec![session_id.to_string()]);
        }
        Ok(ended.is_some())
    }

    /// A spent refresh token came back. Within the grace window that is a
    /// client racing itself; after it, two holders (one stole it), so the
    /// session ends. Returns whether it was past the grace window.
    pub async fn refresh_token_reused(
        &self,
        session_id: &str,
        rotated_at: i64,
    ) -> Result<bool, OAuthError> {
        if now_ms() - rotated_at <= self.config.refresh_reuse_grace_ms {
            return Ok(false);
        }
        tracing::warn!(session = %session_id, "refresh token reuse detected; session revoked");
        self.end_session(session_id).await?;
        Ok(true)
    }

    /// Revokes every session of a user; returns how many ended.
    pub async fn end_user_sessions(
        &self,
        realm: &Realm,
        user_id: &str,
    ) -> Result<usize, OAuthError> {
        let ended = self
            .store
            .revoke_user_sessions(&realm.id, user_id, now_ms())
            .await
            .map_err(OAuthError::server_error)?;
        let n = ended.len();
        self.announce_ended(user_id, ended);
        Ok(n)
    }

    /// Revokes every session of a client (it was disabled or deleted) and
    /// tells subscribers; returns how many ended.
    pub async fn end_client_sessions(&self, client: &Client) -> Result<usize, OAuthError> {
        let ended = self
            .store
            .revoke_client_sessions(&client.realm_id, &client.id, now_ms())
            .await
            .map_err(OAuthError::server_error)?;
        let n = ended.len();
        for (user_id, session_id) in ended {
            self.announce_ended(&user_id, vec![session_id]);
        }
        if n > 0 {
            tracing::info!(client = %client.client_id, sessions = n, "client's sessions ended");
        }
        Ok(n)
    }

    /// Publishes `SessionRevoked` for sessions of `user_id` the store has
    /// just revoked.
    pub fn announce_ended(&self, user_id: &str, session_ids: Vec<String>) {
        for session_id in session_ids {
            self.events.publish(events::ServerEvent::SessionRevoked {
                user_id: user_id.to_string(),
                session_id,
            });
        }
    }

    /// Sends `event` with `data` to every socket of the user, on any node
    /// (the me-channel).
    pub fn publish_to_user(&self, user_id: &str, event: &str, data: serde_json::Value) {
        self.events.publish(events::ServerEvent::ToUser {
            user_id: user_id.to_string(),
            event: event.to_string(),
            data,
        });
    }

    /// The `iss` of tokens from `realm`.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{}", self.config.public_url, realm)
    }

    /// Looks a realm up by name; unknown or disabled realms are 404.
    pub async fn realm(&self, name: &str) -> Result<Realm, OAuthError> {
        // PostgreSQL refuses NUL in text: such a name is simply not a realm.
        if name.len() > 255 || name.chars().any(char::is_control) {
            return Err(OAuthError::not_found("Realm does not exist"));
        }
        match self.store.realm_by_name(name).await {
            Ok(Some(r)) if r.enabled => Ok(r),
            Ok(_) => Err(OAuthError::not_found("Realm does not exist")),
            Err(e) => Err(OAuthError::server_error(e)),
        }
    }
}
