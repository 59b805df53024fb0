//! JWK sets as fetched from an issuer's `jwks_uri` (upstream providers, the
//! verify crate's JWKS cache) through parsing and key construction.
//!
//! Asserts: nothing panics; a JWK set that parses serialises and parses back
//! equal; a key accepted from a JWK renders a JWK that gives back the same
//! key (same algorithm, same SPKI, same thumbprint).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_keys::{JwkSet, VerifyingKey};

fuzz_target!(|data: &[u8]| {
    let Ok(set) = serde_json::from_slice::<JwkSet>(data) else {
        return;
    };
    let json = serde_json::to_vec(&set).expect("a JWK set serialises");
    let again: JwkSet = serde_json::from_slice(&json).expect("own output parses");
    assert_eq!(again, set);

    for jwk in &set.keys {
        let Ok(key) = VerifyingKey::from_jwk(jwk) else {
            continue;
        };
        let rendered = key.jwk();
        let back = VerifyingKey::from_jwk(&rendered).expect("own JWK is accepted");
        assert_eq!(back.alg(), key.alg());
        assert_eq!(back.spki_der(), key.spki_der());
        assert_eq!(back.thumbprint(), key.thumbprint());
        assert_eq!(back.jwk(), rendered);
    }
});
