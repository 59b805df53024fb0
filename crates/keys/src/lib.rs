//! Signing keys and the JWS format: key generation (RS256/RS512/ES256/EdDSA),
//! sealing private keys with the master key, compact JWS signing and
//! verification, and JWKS rendering. No storage and no HTTP here: callers
//! parse a key once and keep the parsed form.

mod jwk;
mod jws;
mod mac;
mod master;
mod signing;

pub use jwk::{Jwk, JwkSet};
pub use jws::{
    decode_unverified_header, decode_unverified_issuer, verify_compact, JwsError, JwsHeader,
};
pub use mac::MacKey;
pub use master::{MasterKey, MasterKeyError};
pub use signing::{generate, GeneratedKey, KeyError, SigningKey, VerifyingKey};
