//! Shared pieces of the fuzz targets: fixed keys, and the two pure parsers
//! that live in crates too heavy to build instrumented in CI's budget.
//!
//! `tessera-oauth` (form parameters) and `tessera-connect` (provider state)
//! pull in sqlx, axum, reqwest and openidconnect: about 250 crates that a
//! coverage-instrumented release build would compile from scratch on every CI
//! run. Their parsers are self-contained files that depend only on
//! `tessera-core`, serde and base64, so the targets compile those very files
//! here with `#[path]`. If one of them grows a dependency on the rest of its
//! crate, this build fails and says so; fuzz the function through its crate
//! then.

use std::sync::OnceLock;
use tessera_core::SigningAlg;
use tessera_keys::{MacKey, MasterKey, SigningKey, VerifyingKey};

/// `crates/oauth/src/params.rs`: the token endpoint's form parser.
#[path = "../../crates/oauth/src/params.rs"]
pub mod params;

/// `crates/connect/src/state.rs`: the provider `state` parameter.
#[path = "../../crates/connect/src/state.rs"]
pub mod state;

/// A signing key and its verifying key, generated once per process.
pub struct KeyPair {
    pub signing: SigningKey,
    pub verifying: VerifyingKey,
}

/// One key pair per algorithm, generated on first use (RSA takes a moment).
pub fn key_pair(alg: SigningAlg) -> &'static KeyPair {
    static PAIRS: OnceLock<Vec<(SigningAlg, KeyPair)>> = OnceLock::new();
    let pairs = PAIRS.get_or_init(|| {
        [
            SigningAlg::RS256,
            SigningAlg::RS512,
            SigningAlg::ES256,
            SigningAlg::EdDSA,
        ]
        .into_iter()
        .map(|alg| {
            let g = tessera_keys::generate(alg).expect("key generation");
            let signing =
                SigningKey::from_pkcs8(g.kid.clone(), alg, &g.pkcs8_der).expect("generated PKCS#8");
            let verifying =
                VerifyingKey::from_spki(g.kid, alg, &g.spki_der).expect("generated SPKI");
            (alg, KeyPair { signing, verifying })
        })
        .collect()
    });
    &pairs
        .iter()
        .find(|(a, _)| *a == alg)
        .expect("every algorithm has a pair")
        .1
}

/// A fixed master key, so MAC-based targets are reproducible.
pub fn master_key() -> MasterKey {
    MasterKey::from_bytes([7u8; 32])
}

/// The HS256 key provider state is signed with (fixed, see [`master_key`]).
pub fn mac_key(purpose: &str) -> MacKey {
    master_key().mac_key(purpose)
}
