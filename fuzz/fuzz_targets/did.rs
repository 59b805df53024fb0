//! DIDs and context names as a wallet sends them to the consent endpoints,
//! through parsing, normalisation and offline key resolution.
//!
//! Asserts: nothing panics; parsing is idempotent (parse -> display -> parse
//! gives the same DID, and the same key); the normal form is ASCII with no
//! whitespace, `did:` plus a lower-case method; Ethereum methods are
//! case-insensitive (upper-casing the input names the same DID); a context
//! name never holds a double quote or a control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_consent::{ContextName, Did, DidKey, DidResolver, OfflineResolver};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = ContextName::parse(raw) {
        assert!(!name.as_str().contains('"'));
        assert!(!name.as_str().chars().any(char::is_control));
        assert_eq!(ContextName::parse(name.as_str()), Ok(name.clone()));
    }
    let Ok(did) = Did::parse(raw) else {
        return;
    };
    let normal = did.to_string();
    assert_eq!(normal, did.as_str());
    assert!(normal.starts_with("did:"));
    assert!(normal.bytes().all(|b| b.is_ascii_graphic()));
    assert_eq!(did.method(), did.method().to_ascii_lowercase());
    assert!(normal[4..].starts_with(&format!("{}:", did.method())));

    let again = Did::parse(&normal).expect("a normal form parses");
    assert_eq!(again, did);
    let key = OfflineResolver.resolve(&did);
    assert_eq!(OfflineResolver.resolve(&again), key);
    if let Ok(DidKey::EthereumAddress(_)) = key {
        let upper = Did::parse(&raw.to_ascii_uppercase()).expect("same syntax");
        assert_eq!(upper, did, "Ethereum DIDs are case-insensitive");
    }
});
