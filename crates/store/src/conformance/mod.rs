//! The storage conformance suite (dex's habit): every backend runs exactly
//! these tests through `conformance_tests!`, so SQLite and PostgreSQL cannot
//! drift apart in behaviour.

use crate::{
    ClientMeta, DeviceDecision, Purged, Redeemed, RotateOutcome, Store, StoreError, UserQuery,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera_core::model::KeyStatus;
use tessera_core::time::now_ms;
use tessera_core::{
    AuthCode, Client, ConsentChallenge, DeviceCode, DeviceStatus, MachineTokenRecord,
    ProviderConnection, ProviderState, Realm, RefreshTokenRecord, Session, SigningAlg,
    SigningKeyRecord, Signup, SsoSession, TokenHash, User, Workspace, WorkspaceStatus,
};

mod batches;
mod browser;
mod clients;
mod connect;
mod consent;
mod gc;
mod keys;
mod realms;
mod refresh;
mod sessions;
mod throttle;
mod users;
mod workspaces;

pub use batches::*;
pub use browser::*;
pub use clients::*;
pub use connect::*;
pub use consent::*;
pub use gc::*;
pub use keys::*;
pub use realms::*;
pub use refresh::*;
pub use sessions::*;
pub use throttle::*;
pub use users::*;
pub use workspaces::*;

/// Generates one `#[tokio::test]` per conformance check. `$make` is an async
/// fn returning `Option<(Arc<dyn Store>, guard)>`; `None` means "backend not
/// configured here, skipped" (the constructor prints why).
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            realms_crud, clients_crud, users_crud_and_query, sessions_and_revocation,
            refresh_rotation_and_reuse, concurrent_rotation_has_one_winner,
            rotation_of_revoked_or_expired_is_inactive, signing_key_rotation,
            deleting_a_realm_deletes_its_contents, purge_removes_only_expired,
            purge_works_in_batches, workspaces_and_machine_tokens,
            challenges_are_spent_once, device_sessions_revoke_together,
            touch_and_extending_rotation, sso_sessions_end_their_app_sessions,
            auth_codes_redeem_once, device_codes_poll_decide_redeem, purge_removes_codes_and_sso,
            sso_renewal_and_late_revocation, provider_states_are_taken_once,
            signups_complete_then_spend_once, provider_connections_and_identities,
            throttle_windows_are_shared, client_sessions_revoke_together,
            refresh_token_is_read_with_its_session, concurrent_rotations_in_and_across_batches,
            a_failing_write_fails_alone);
    };
    (@each $make:path; $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some((store, _guard)) = $make().await else { return };
            $crate::conformance::$name(store).await;
        }
    )*};
}

pub fn realm(name: &str) -> Realm {
    Realm::new(name, now_ms())
}

pub fn client(realm: &Realm, client_id: &str) -> Client {
    Client {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        client_id: client_id.to_string(),
        name: None,
        enabled: true,
        public_client: false,
        secret_hash: Some(TokenHash::of("s3cret")),
        secret_generation: 1,
        secret_generated: false,
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        web_origins: vec![],
        standard_flow_enabled: true,
        direct_access_grants_enabled: true,
        service_accounts_enabled: false,
        attributes: BTreeMap::from([("k".to_string(), "v".to_string())]),
        created_at: now_ms(),
    }
}

pub fn user(realm: &Realm, username: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        username: username.to_string(),
        email: Some(format!("{username}@example.test")),
        email_verified: false,
        first_name: Some("First".into()),
        last_name: Some(format!("Last{username}")),
        enabled: true,
        password_hash: Some("$argon2id$fake".into()),
        password_temporary: false,
        roles: vec!["user".into()],
        attributes: BTreeMap::from([("team".to_string(), vec!["a".to_string()])]),
        created_at: now_ms(),
    }
}

pub fn session(realm: &Realm, user: &User, client: &Client, now: i64) -> Session {
    Session {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        user_id: user.id.clone(),
        client_id: client.id.clone(),
        device_id: Some("laptop".into()),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        context_name: None,
        origin: None,
        sso_session_id: None,
        scope: "email profile".into(),
        auth_time: now,
        created_at: now,
        last_used_at: now,
        expires_at: now + 3_600_000,
        revoked_at: None,
    }
}

pub fn refresh(session: &Session, secret: &str, now: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        hash: TokenHash::of(secret),
        session_id: session.id.clone(),
        created_at: now,
        expires_at: session.expires_at,
        rotated_at: None,
    }
}

fn key(realm: &Realm, kid: &str, status: KeyStatus) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_string(),
        realm_id: realm.id.clone(),
        alg: SigningAlg::RS256,
        purpose: "realm".into(),
        status,
        sealed_private_key: vec![1, 2, 3],
        public_key_der: vec![4, 5, 6],
        created_at: now_ms(),
        visible_until: None,
    }
}

/// A realm with one client and one user, for tests that need the basics.
async fn fixture(store: &dyn Store, name: &str) -> (Realm, Client, User) {
    let r = realm(name);
    store.create_realm(&r).await.expect("create realm");
    let c = client(&r, "app");
    store.create_client(&c).await.expect("create client");
    let u = user(&r, "alice");
    store.create_user(&u).await.expect("create user");
    (r, c, u)
}
