//! Public-key consent login, Verida's design: a wallet signs a consent
//! message with its DID's key, and the server turns the signature into
//! tokens. This crate holds the parts with no I/O: DIDs (parsed and
//! normalised), context names, the exact consent messages, and signature
//! verification for Ethereum `personal_sign` (EIP-191, secp256k1) and
//! Ed25519 `did:key` identifiers. DID methods that need a network lookup go
//! through [`DidResolver`], so one can be added without touching the rest.

mod did;
mod message;
mod signature;

pub use did::{ContextName, Did, DidError, DidKey, DidResolver, OfflineResolver};
pub use message::{authenticate_message, database_username, invalidate_device_message};
pub use signature::{verify_signature, SignatureError};
