//! `application/x-www-form-urlencoded` protocol request bodies (token,
//! revocation, introspection, device and PAR endpoints) through the form
//! parser every protocol endpoint uses (`tessera_oauth::Params::parse`).
//!
//! Asserts: nothing panics; a body that parses has at most `MAX_PARAMS`
//! distinct names, `get` returns only non-empty values and `require` agrees
//! with it; re-encoding the parameters and parsing again gives the same
//! values (parse -> serialize -> parse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use tessera_fuzz::params::{Params, MAX_PARAMS};

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        assert!(Params::parse(data).is_err());
        return;
    };
    let parsed = Params::parse(data);
    let names: HashSet<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let acceptable = pairs.len() <= MAX_PARAMS && names.len() == pairs.len();
    assert_eq!(parsed.is_ok(), acceptable, "{pairs:?}");
    let Ok(params) = parsed else {
        return;
    };
    let body = serde_urlencoded::to_string(&pairs).expect("pairs encode");
    let again = Params::parse(body.as_bytes()).expect("own encoding parses");
    for (name, value) in &pairs {
        let got = params.get(name);
        assert_eq!(got, Some(value.as_str()).filter(|v| !v.is_empty()));
        assert_eq!(params.require(name).ok(), got);
        assert_eq!(again.get(name), got);
    }
});
