//! Narrow storage traits, one per aggregate, and the conformance suite every
//! backend must pass. API boundary: domain code talks to `dyn Store`; it never
//! learns which backend it has (atuin's "chosen once from the URL" rule).

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod schema;

pub use error::StoreError;

use async_trait::async_trait;
use tessera_core::model::KeyStatus;
use tessera_core::{
    AuthCode, Client, ConsentChallenge, DeviceCode, MachineTokenRecord, ProviderConnection,
    ProviderState, Realm, RefreshTokenRecord, Session, SigningKeyRecord, Signup, SsoSession,
    TokenHash, User, Workspace, WorkspaceStatus,
};

pub type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait RealmStore: Send + Sync {
    /// Fails with `Conflict` when the name is taken.
    async fn create_realm(&self, realm: &Realm) -> Result<()>;
    async fn realm_by_name(&self, name: &str) -> Result<Option<Realm>>;
    async fn list_realms(&self) -> Result<Vec<Realm>>;
    /// Fails with `Conflict` on a rename onto an existing name, `NotFound` if gone.
    async fn update_realm(&self, realm: &Realm) -> Result<()>;
    /// Deletes the realm and everything in it.
    async fn delete_realm(&self, realm_id: &str) -> Result<()>;
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn create_client(&self, client: &Client) -> Result<()>;
    async fn client(&self, realm_id: &str, id: &str) -> Result<Option<Client>>;
    async fn client_by_client_id(&self, realm_id: &str, client_id: &str) -> Result<Option<Client>>;
    async fn list_clients(&self, realm_id: &str) -> Result<Vec<Client>>;
    async fn update_client(&self, client: &Client) -> Result<()>;
    async fn delete_client(&self, realm_id: &str, id: &str) -> Result<()>;
}

/// How to filter a user listing (Keycloak's `GET /users` query).
#[derive(Clone, Debug, Default)]
pub struct UserQuery {
    /// Substring of username, email, first or last name (case-insensitive).
    pub search: Option<String>,
    /// Username: exact when `exact`, else substring.
    pub username: Option<String>,
    pub email: Option<String>,
    pub exact: bool,
    pub first: i64,
    pub max: i64,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, user: &User) -> Result<()>;
    async fn user(&self, realm_id: &str, id: &str) -> Result<Option<User>>;
    async fn user_by_username(&self, realm_id: &str, username: &str) -> Result<Option<User>>;
    async fn list_users(&self, realm_id: &str, query: &UserQuery) -> Result<Vec<User>>;
    async fn count_users(&self, realm_id: &str) -> Result<i64>;
    async fn update_user(&self, user: &User) -> Result<()>;
    /// Sets only the password hash and its temporary flag (`NotFound` if gone).
    async fn set_password(
        &self,
        realm_id: &str,
        id: &str,
        hash: &str,
        temporary: bool,
    ) -> Result<()>;
    async fn delete_user(&self, realm_id: &str, id: &str) -> Result<()>;
}

/// Outcome of spending a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token is now spent and the new one stored, in one commit.
    Rotated(Box<Session>),
    /// No such token.
    Unknown,
    /// The token was already spent at `rotated_at`: reuse, or a lost race.
    AlreadyRotated { session_id: String, rotated_at: i64 },
    /// The token or its session expired or was revoked.
    Inactive,
}

/// Whose session a revocation ended: the event channel's rooms are keyed by
/// realm as well as user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOwner {
    pub realm_id: String,
    pub user_id: String,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session together with its first refresh token, in one commit.
    async fn create_session(&self, session: &Session, first: &RefreshTokenRecord) -> Result<()>;
    async fn session(&self, id: &str) -> Result<Option<Session>>;
    /// Active sessions of a user, newest first.
    async fn user_sessions(
        &self,
        realm_id: &str,
        user_id: &str,
        now_ms: i64,
    ) -> Result<Vec<Session>>;
    /// Marks a session revoked (its refresh tokens die with it). Returns the
    /// session's realm and user if a not-yet-revoked session was revoked.
    async fn revoke_session(&self, id: &str, now_ms: i64) -> Result<Option<SessionOwner>>;
    /// Revokes every active session of a user and their SSO sessions, and
    /// denies device codes they approved that were not redeemed yet; returns
    /// the ids of the (app) sessions revoked.
    async fn revoke_user_sessions(
        &self,
        realm_id: &str,
        user_id: &str,
        now_ms: i64,
    ) -> Result<Vec<String>>;
    /// Revokes every active session of a client (by its internal id) and
    /// denies device codes approved for it that were not redeemed yet;
    /// returns the `(user id, session id)` of each session revoked.
    async fn revoke_client_sessions(
        &self,
        realm_id: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, String)>>;
    /// Records a use of an active session (last-used time, IP, user agent)
    /// and returns it; `None` if it is missing, expired or revoked.
    async fn touch_session(
        &self,
        id: &str,
        now_ms: i64,
        client_meta: &ClientMeta,
    ) -> Result<Option<Session>>;
}

#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    async fn refresh_token(&self, hash: &TokenHash) -> Result<Option<RefreshTokenRecord>>;
    /// A token and its session, in one read (the refresh grant's checks).
    async fn refresh_token_with_session(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(RefreshTokenRecord, Session)>>;
    /// Atomically spends `old` and stores `new` for the same session, touching
    /// the session's last-used time (and IP / user agent when given). Exactly
    /// one of any number of concurrent calls with the same `old` gets `Rotated`.
    /// If `new` expires after the session, the session is extended to it
    /// (consent logins renew their 30 days; OAuth grants pass the session's
    /// own expiry, so theirs never moves).
    async fn rotate_refresh_token(
        &self,
        old: &TokenHash,
        new: &RefreshTokenRecord,
        now_ms: i64,
        client_meta: &ClientMeta,
    ) -> Result<RotateOutcome>;
}

/// Where a request came from, recorded on the session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_key(&self, key: &SigningKeyRecord) -> Result<()>;
    /// Keys of a realm for one purpose, newest first.
    async fn keys(&self, realm_id: &str, purpose: &str) -> Result<Vec<SigningKeyRecord>>;
    /// Makes `new` the only active key of its realm and purpose, retiring the
    /// previous active keys with `visible_until`, in one commit.
    async fn rotate_keys(&self, new: &SigningKeyRecord, visible_until: i64) -> Result<()>;
    async fn set_key_status(
        &self,
        kid: &str,
        status: KeyStatus,
        visible_until: Option<i64>,
    ) -> Result<()>;
}

#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// Fails with `Conflict` when (realm, namespace, name) is taken.
    async fn create_workspace(&self, ws: &Workspace) -> Result<()>;
    async fn workspace(&self, realm_id: &str, id: &str) -> Result<Option<Workspace>>;
    async fn workspace_by_name(
        &self,
        realm_id: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Workspace>>;
    /// Workspaces a user owns or is a member of, by namespace and name.
    async fn user_workspaces(&self, realm_id: &str, user_id: &str) -> Result<Vec<Workspace>>;
    /// Sets the status and, in the same commit, revokes every live machine
    /// token of the workspace (a stopped workspace has none; a started one
    /// begins with none, so tokens of an earlier run never come back).
    async fn set_workspace_status(
        &self,
        id: &str,
        status: WorkspaceStatus,
        now_ms: i64,
    ) -> Result<()>;
    /// Deletes a stopped workspace; `NotFound` if it is missing or running.
    async fn delete_workspace(&self, realm_id: &str, id: &str) -> Result<()>;
    /// Adds a member (idempotent).
    async fn add_workspace_member(&self, workspace_id: &str, user_id: &str) -> Result<()>;
    async fn is_workspace_member(&self, workspace_id: &str, user_id: &str) -> Result<bool>;
    /// Stores a machine token; `Conflict` if the user already has a live one
    /// for the workspace (one per user per workspace).
    async fn insert_machine_token(&self, token: &MachineTokenRecord) -> Result<()>;
    /// The user's live machine token for the workspace.
    async fn live_machine_token(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<Option<MachineTokenRecord>>;
    async fn machine_token(&self, jti: &str) -> Result<Option<MachineTokenRecord>>;
}

/// Spent consent challenges and the consent-login session queries.
/// Challenges themselves are stateless (a MAC'd JWT); only a challenge that
/// was answered is written, so asking for one writes nothing.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Records the challenge as spent; false if it already was. Of any number
    /// of concurrent calls with the same hash, exactly one gets true. The row
    /// is kept until `expires_at`, after which the challenge is dead anyway.
    async fn spend_challenge(&self, challenge: &ConsentChallenge) -> Result<bool>;
    /// Revokes every active session of `user_id` for this context and device;
    /// returns the ids revoked.
    async fn revoke_device_sessions(
        &self,
        realm_id: &str,
        user_id: &str,
        context_name: &str,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Vec<String>>;
}

/// Outcome of redeeming an authorization or device code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// The code is now spent and its session (with the first refresh token)
    /// stored, in one commit.
    Created,
    /// The code was spent before: a replay. Its session id is the one the
    /// first redemption created.
    AlreadySpent { session_id: String },
    /// No such code, or (device codes) not approved.
    Gone,
}

/// A person's decision on a device code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceDecision {
    pub approve: bool,
    pub user_id: String,
    pub sso_session_id: String,
    pub auth_time: i64,
}

/// Browser sign-in: SSO sessions, authorization codes and device codes.
#[async_trait]
pub trait BrowserStore: Send + Sync {
    async fn create_sso_session(&self, s: &SsoSession) -> Result<()>;
    /// The active SSO session whose cookie secret hashes to `hash`, with its
    /// last-used time set to `now_ms`.
    async fn touch_sso_session(&self, hash: &TokenHash, now_ms: i64) -> Result<Option<SsoSession>>;
    /// The same user signed in again in this browser: new cookie secret,
    /// new `auth_time` and expiry. `None` if the session is no longer active.
    async fn renew_sso_session(
        &self,
        id: &str,
        secret_hash: &TokenHash,
        now_ms: i64,
        expires_at: i64,
    ) -> Result<Option<SsoSession>>;
    async fn sso_session(&self, id: &str) -> Result<Option<SsoSession>>;
    /// Active SSO sessions of a user, newest first.
    async fn user_sso_sessions(
        &self,
        realm_id: &str,
        user_id: &str,
        now_ms: i64,
    ) -> Result<Vec<SsoSession>>;
    /// Revokes an SSO session (if still active) and every active session
    /// started from it (even when the SSO session itself has expired), in one
    /// commit. Returns its realm and user and the app sessions revoked;
    /// `None` if there is no such SSO session.
    async fn revoke_sso_session(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<(SessionOwner, Vec<String>)>>;

    async fn insert_auth_code(&self, code: &AuthCode) -> Result<()>;
    async fn auth_code(&self, hash: &TokenHash) -> Result<Option<AuthCode>>;
    /// Spends the code and creates `session` with its first refresh token in
    /// one commit, provided the code's SSO session is still active (else
    /// `Gone`, and nothing changes). Of concurrent redemptions exactly one
    /// gets `Created`.
    async fn redeem_auth_code(
        &self,
        hash: &TokenHash,
        now_ms: i64,
        session: &Session,
        first: &RefreshTokenRecord,
    ) -> Result<Redeemed>;

    /// Fails with `Conflict` when the user code is taken.
    async fn insert_device_code(&self, code: &DeviceCode) -> Result<()>;
    async fn device_code(&self, hash: &TokenHash) -> Result<Option<DeviceCode>>;
    async fn device_code_by_user_code(
        &self,
        realm_id: &str,
        user_code: &str,
    ) -> Result<Option<DeviceCode>>;
    /// Records a poll. False if it came sooner than the interval (less one
    /// second of slack for network jitter) after the previous one; the
    /// interval then grows by 5 seconds (RFC 8628 §3.5).
    async fn record_device_poll(&self, hash: &TokenHash, now_ms: i64) -> Result<bool>;
    /// Approves or denies a pending, unexpired code; false if it was not
    /// pending (decided before) or has expired.
    async fn decide_device_code(
        &self,
        realm_id: &str,
        user_code: &str,
        decision: &DeviceDecision,
        now_ms: i64,
    ) -> Result<bool>;
    /// Spends an approved code and creates `session`, in one commit.
    async fn redeem_device_code(
        &self,
        hash: &TokenHash,
        now_ms: i64,
        session: &Session,
        first: &RefreshTokenRecord,
    ) -> Result<Redeemed>;
}

/// Upstream providers: authorization requests in flight, SSO sign-ups and
/// users' provider connections.
#[async_trait]
pub trait ConnectStore: Send + Sync {
    async fn insert_provider_state(&self, state: &ProviderState) -> Result<()>;
    /// Deletes the state and returns it if it had not expired by `now_ms`.
    /// Of concurrent callers exactly one gets it; a spent, expired or
    /// unknown state is `None`.
    async fn take_provider_state(&self, id: &str, now_ms: i64) -> Result<Option<ProviderState>>;
    /// Fails with `Conflict` when the sign-up token was used before.
    async fn insert_signup(&self, signup: &Signup) -> Result<()>;
    async fn signup(&self, hash: &TokenHash) -> Result<Option<Signup>>;
    /// Records the callback's outcome (the user, or the provider's error) on
    /// a sign-up that is still open and unexpired; false otherwise.
    async fn complete_signup(
        &self,
        hash: &TokenHash,
        user_id: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool>;
    /// Spends a sign-up that completed with a user and creates `session` in
    /// one commit; false (and nothing changes) if it is not completed, was
    /// spent or has expired. Of concurrent callers exactly one succeeds.
    async fn spend_signup(
        &self,
        hash: &TokenHash,
        now_ms: i64,
        session: &Session,
        first: &RefreshTokenRecord,
    ) -> Result<bool>;
    /// Creates or replaces the user's connection to `provider`. Fails with
    /// `Conflict` when that provider identity belongs to another user.
    async fn put_provider_connection(&self, connection: &ProviderConnection) -> Result<()>;
    /// Replaces the sealed tokens and expiry of an existing connection (a
    /// refresh); false, and nothing written, if it was disconnected.
    async fn update_provider_tokens(&self, connection: &ProviderConnection) -> Result<bool>;
    async fn provider_connection(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<ProviderConnection>>;
    /// A user's connections, by provider name.
    async fn user_provider_connections(&self, user_id: &str) -> Result<Vec<ProviderConnection>>;
    /// The user a provider identity is connected to.
    async fn provider_identity_user(
        &self,
        realm_id: &str,
        provider: &str,
        subject: &str,
    ) -> Result<Option<String>>;
    /// Deletes the connection and returns what it held.
    async fn delete_provider_connection(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<ProviderConnection>>;
}

/// Rate limits that every node sees: fixed windows of hits per key (a
/// username, a source address, a realm), counted in the database so that
/// N nodes do not multiply the allowed rate.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts one hit on `key`. A window starts at the first hit after the
    /// previous one ended and lasts `window_ms`. Returns the hits in the
    /// current window (this one included) and when the window started.
    async fn hit(&self, key: &str, now_ms: i64, window_ms: i64) -> Result<(i64, i64)>;
    /// Takes back one hit of the window that started at `window_start` (a
    /// successful login, a check that never ran); nothing if it has ended.
    async fn unhit(&self, key: &str, window_start: i64) -> Result<()>;
    /// Forgets every hit on `key`.
    async fn clear_hits(&self, key: &str) -> Result<()>;
}

/// Rows removed by one garbage-collection batch, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub challenges: u64,
    /// Expired authorization and device codes.
    pub codes: u64,
    pub sso_sessions: u64,
    /// Expired provider states and sign-ups.
    pub connect: u64,
    /// Rate-limit windows that ended a day ago.
    pub throttle: u64,
}

impl Purged {
    /// Rows removed from the table that lost the most.
    pub fn largest(&self) -> u64 {
        [
            self.refresh_tokens,
            self.sessions,
            self.challenges,
            self.codes,
            self.sso_sessions,
            self.connect,
            self.throttle,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
    pub fn add(&mut self, other: &Purged) {
        self.refresh_tokens += other.refresh_tokens;
        self.sessions += other.sessions;
        self.challenges += other.challenges;
        self.codes += other.codes;
        self.sso_sessions += other.sso_sessions;
        self.connect += other.connect;
        self.throttle += other.throttle;
    }
    pub fn total(&self) -> u64 {
        self.refresh_tokens
            + self.sessions
            + self.challenges
            + self.codes
            + self.sso_sessions
            + self.connect
            + self.throttle
    }
}

/// Everything a Tessera node needs from its database.
#[async_trait]
pub trait Store:
    RealmStore
    + ClientStore
    + UserStore
    + SessionStore
    + RefreshTokenStore
    + KeyStore
    + WorkspaceStore
    + ConsentStore
    + BrowserStore
    + ConnectStore
    + ThrottleStore
{
    /// Cheap round trip for `/health/ready`.
    async fn ping(&self) -> Result<()>;
    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    fn backend(&self) -> &'static str;
    /// One garbage-collection batch: deletes at most `limit` rows from each of
    /// refresh tokens expired by `before_ms`, sessions expired by then (or
    /// revoked a day before it) and expired challenges. Each table is its own
    /// short statement, so no write lock is held for long; callers repeat
    /// until a batch comes back smaller than `limit`.
    async fn purge_expired(&self, before_ms: i64, limit: i64) -> Result<Purged>;
}

#[doc(hidden)]
pub mod sql;
#[doc(hidden)]
pub use {
    async_trait::async_trait as __async_trait, serde as __serde, serde_json as __serde_json,
    tessera_core as __core,
};
