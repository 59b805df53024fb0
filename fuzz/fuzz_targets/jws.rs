//! Untrusted compact JWS tokens (bearer tokens, ID token hints, consent
//! challenges) through header decoding and verification with every key kind.
//!
//! Asserts: nothing panics; a header that decodes re-encodes to a header that
//! decodes equal; no arbitrary input verifies under a key it was not signed
//! with (the fuzzer cannot forge signatures, so any `Ok` is a bug unless the
//! input is one of our own tokens, which the corpus never contains).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::SigningAlg;
use tessera_fuzz::{key_pair, mac_key};
use tessera_keys::{decode_unverified_header, verify_compact, JwsHeader};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(header) = decode_unverified_header(token) {
        let json = serde_json::to_vec(&header).expect("a header serialises");
        let again: JwsHeader = serde_json::from_slice(&json).expect("own output parses");
        assert_eq!(again, header);
    }
    for alg in [
        SigningAlg::RS256,
        SigningAlg::RS512,
        SigningAlg::ES256,
        SigningAlg::EdDSA,
    ] {
        let verified = verify_compact(token, &key_pair(alg).verifying);
        assert!(verified.is_err(), "{alg} accepted a token it never signed");
    }
    let verified = mac_key("fuzz").verify_jwt(token);
    assert!(verified.is_err(), "HS256 accepted a token it never signed");
});
