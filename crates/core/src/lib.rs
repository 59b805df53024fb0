//! Tessera's domain: realms, clients, users, sessions, token kinds and the
//! OAuth error vocabulary. Architecture invariant: nothing here performs I/O,
//! knows about HTTP or SQL, or reads the clock except through `now_ms`.

pub mod claims;
pub mod error;
pub mod model;
pub mod scope;
pub mod secret;
pub mod storage;
pub mod time;

pub use error::{OAuthError, OAuthErrorCode};
pub use model::{
    AuthCode, Client, ConsentChallenge, DeviceCode, DeviceStatus, MachineTokenRecord,
    ProviderConnection, ProviderState, Realm, RefreshTokenRecord, Session, SigningAlg,
    SigningKeyRecord, Signup, SsoSession, User, Workspace, WorkspaceStatus,
};
pub use secret::{Secret, TokenHash};
pub use storage::StoreError;
