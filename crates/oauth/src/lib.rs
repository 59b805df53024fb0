//! The domain services: everything between a parsed request and the store.
//! Each service is named after what it does and holds only the storage
//! traits it uses; `Services` wires them once over one store.
//!
//! | service | file | owns |
//! |---|---|---|
//! | `TokenEndpoint` | `grants/` | the token endpoint's grants, userinfo, introspection, revocation |
//! | `ClientAuth` | `client_auth.rs` | client authentication (the one place) |
//! | `Verifier` | `verify.rs` | checking this server's access tokens and their sessions |
//! | `Minter` | `issue.rs` | signing every token the server hands out |
//! | `Sessions` | `sessions.rs` | ending sessions and announcing it to the event channel |
//! | `PasswordCheck` | `login.rs` | username + password, throttled |
//! | `BrowserSignIn` | `browser/` | SSO sessions, authorize, device verification, logout, account |
//! | `ConsentLogin` | `consent.rs` | DID consent logins (Verida) |
//! | `Administration` | `admin.rs` | realms, clients, users, keys and their side effects |
//! | `Workspaces` | `workspaces.rs` | Che workspaces and machine tokens |
//! | `ProviderAccounts` | `providers.rs` | upstream provider state, connections and sign-ups |
//! | `Health` | `health.rs` | the readiness check and the backend's name |
//!
//! Realms and clients are read through `catalog::Catalog`, an in-memory
//! cache that every write made through a service empties.
//!
//! API boundary: no HTTP types here, and no store beyond this crate: the
//! `http`, `connect` and `channel` crates call services. Requests arrive as
//! `Params` (plus the `Authorization` header, read by
//! `ClientAuth::calling_client`), errors leave as `OAuthError`s.

pub mod admin;
pub mod browser;
pub mod catalog;
pub mod client_auth;
pub mod config;
pub mod consent;
pub mod events;
pub mod gc;
pub mod grants;
pub mod health;
pub mod issue;
pub mod keyring;
pub mod live_sessions;
pub mod login;
pub mod params;
pub mod password;
pub mod protocol;
pub mod providers;
pub mod provision;
pub mod realms;
pub mod rotation;
pub mod self_service;
pub mod sessions;
pub mod throttle;
pub mod verified_tokens;
pub mod verify;
pub mod workspaces;

pub use admin::Administration;
pub use browser::BrowserSignIn;
pub use client_auth::{ClientAuth, ClientCredentials};
pub use config::OAuthConfig;
pub use consent::ConsentLogin;
pub use grants::TokenEndpoint;
pub use health::Health;
pub use issue::{Minter, TokenResponse};
pub use keyring::KeyCache;
pub use login::PasswordCheck;
pub use params::Params;
pub use providers::ProviderAccounts;
pub use realms::Realms;
pub use sessions::Sessions;
pub use verify::Verifier;
pub use workspaces::Workspaces;

/// Why a service call that both writes and acts (ends sessions, hashes a
/// password, rotates a key) failed: the store refused the write (a
/// conflict, a row that is gone), or the action failed with its own
/// protocol error (a busy hasher is `temporarily_unavailable`, not a 500).
#[derive(Debug)]
pub enum Failure {
    Database(tessera_store::StoreError),
    Service(tessera_core::OAuthError),
}

impl From<tessera_store::StoreError> for Failure {
    fn from(e: tessera_store::StoreError) -> Self {
        Self::Database(e)
    }
}

impl From<tessera_core::OAuthError> for Failure {
    fn from(e: tessera_core::OAuthError) -> Self {
        Self::Service(e)
    }
}

/// Value types of the storage layer that callers pass or receive (never
/// the storage traits themselves).
pub mod data {
    pub use crate::Failure;
    pub use tessera_store::{ClientMeta, StoreError, UserQuery};
}

use std::sync::Arc;
use tessera_consent::{DidResolver, OfflineResolver};
use tessera_store::Store;

/// Every service, wired over one store. Cheap to clone: one `Arc` (axum
/// clones the state's services for every request that asks for them; as
/// a struct of the services themselves that was some hundred reference
/// counts touched per request, 12% of an introspection profile). Its
/// fields are `ServiceSet`'s, reached through `Deref`.
#[derive(Clone)]
pub struct Services(Arc<ServiceSet>);

impl std::ops::Deref for Services {
    type Target = ServiceSet;
    fn deref(&self) -> &ServiceSet {
        &self.0
    }
}

/// The services themselves (see `Services`).
pub struct ServiceSet {
    pub realms: Realms,
    pub tokens: TokenEndpoint,
    pub clients: ClientAuth,
    pub verifier: Verifier,
    pub minter: Minter,
    pub sessions: Sessions,
    pub browser: BrowserSignIn,
    pub consent: ConsentLogin,
    pub admin: Administration,
    pub workspaces: Workspaces,
    pub providers: ProviderAccounts,
    pub health: Health,
    pub config: Arc<OAuthConfig>,
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        master: tessera_keys::MasterKey,
        config: OAuthConfig,
    ) -> Self {
        Self::with_resolver(store, master, config, Arc::new(OfflineResolver))
    }

    /// `new`, with `resolver` finding the key behind a DID for consent logins.
    pub fn with_resolver(
        store: Arc<dyn Store>,
        master: tessera_keys::MasterKey,
        config: OAuthConfig,
        resolver: Arc<dyn DidResolver>,
    ) -> Self {
        let rotation =
            rotation::Rotation::new(store.clone(), &master, config.refresh_reuse_grace_ms);
        let keys = Arc::new(KeyCache::new(store.clone(), master));
        let passwords = Arc::new(password::PasswordHasher::new(&config.password));
        let throttle = Arc::new(throttle::LoginThrottle::new(
            config.throttle.clone(),
            store.clone(),
        ));
        // Realms and clients are read through the catalog (cached, emptied
        // by every write made through it).
        let catalog = Arc::new(catalog::Catalog::new(
            store.clone(),
            store.clone(),
            std::time::Duration::from_millis(config.catalog_ttl_ms),
        ));
        // Live sessions are read through this cache; every revocation made
        // through `Sessions` (or relayed from another node) evicts.
        let live = Arc::new(live_sessions::LiveSessions::new(
            std::time::Duration::from_millis(config.session_cache_ms),
            config.session_cache_max,
        ));
        let config = Arc::new(config);
        let events = Arc::new(events::ServerEvents::default());

        let realms = Realms {
            realm_db: catalog.clone(),
            config: config.clone(),
        };
        let sessions = Sessions {
            session_db: store.clone(),
            events,
            config: config.clone(),
            live: live.clone(),
        };
        let verifier = Verifier {
            config: config.clone(),
            keys: keys.clone(),
            session_db: store.clone(),
            client_db: catalog.clone(),
            user_db: store.clone(),
            live,
            verified: Arc::default(),
        };
        let minter = Minter {
            config: config.clone(),
            keys: keys.clone(),
        };
        let login = PasswordCheck {
            user_db: store.clone(),
            passwords: passwords.clone(),
            throttle: throttle.clone(),
        };
        let clients = ClientAuth {
            client_db: catalog.clone(),
            keys: keys.clone(),
        };
        let tokens = TokenEndpoint {
            config: config.clone(),
            client_db: catalog.clone(),
            user_db: store.clone(),
            browser_db: store.clone(),
            session_db: store.clone(),
            refresh_db: store.clone(),
            rotation: rotation.clone(),
            client_auth: clients.clone(),
            sessions: sessions.clone(),
            verifier: verifier.clone(),
            minter: minter.clone(),
            login: login.clone(),
        };
        let browser = BrowserSignIn {
            config: config.clone(),
            keys: keys.clone(),
            client_db: catalog.clone(),
            user_db: store.clone(),
            browser_db: store.clone(),
            session_db: store.clone(),
            passwords: passwords.clone(),
            throttle,
            client_auth: clients.clone(),
            sessions: sessions.clone(),
            login,
        };
        let consent = ConsentLogin {
            config: config.clone(),
            keys: keys.clone(),
            client_db: catalog.clone(),
            user_db: store.clone(),
            consent_db: store.clone(),
            session_db: store.clone(),
            refresh_db: store.clone(),
            rotation,
            resolver,
            sessions: sessions.clone(),
            minter: minter.clone(),
        };
        let admin = Administration {
            keys: keys.clone(),
            realm_db: catalog.clone(),
            client_db: catalog.clone(),
            user_db: store.clone(),
            session_db: store.clone(),
            passwords,
            sessions: sessions.clone(),
            clients: clients.clone(),
        };
        let workspaces = Workspaces {
            keys: keys.clone(),
            workspace_db: store.clone(),
            user_db: store.clone(),
            minter: minter.clone(),
        };
        let providers = ProviderAccounts {
            config: config.clone(),
            keys: keys.clone(),
            connect_db: store.clone(),
            user_db: store.clone(),
            client_db: catalog.clone(),
            realms: realms.clone(),
            sessions: sessions.clone(),
            minter: minter.clone(),
        };
        let health = Health::new(store);
        Self(Arc::new(ServiceSet {
            realms,
            tokens,
            clients,
            verifier,
            minter,
            sessions,
            browser,
            consent,
            admin,
            workspaces,
            providers,
            health,
            config,
        }))
    }
}
