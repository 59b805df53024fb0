//! Tokens we sign, then changed in one place, as an attacker would.
//!
//! Asserts: a token we sign verifies and gives back exactly the claims that
//! went in (sign -> verify round trip); the same token with any one byte
//! replaced, a byte inserted or removed, or a segment swapped from another
//! token never verifies (Ed25519, ES256 and the server's HS256 tokens).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tessera_core::SigningAlg;
use tessera_fuzz::{key_pair, mac_key};
use tessera_keys::verify_compact;

#[derive(Debug, Arbitrary)]
struct Input {
    sub: String,
    n: i64,
    kind: Option<String>,
    key: u8,
    tamper: Tamper,
}

#[derive(Debug, Arbitrary)]
enum Tamper {
    Replace {
        at: u16,
        byte: u8,
    },
    Insert {
        at: u16,
        byte: u8,
    },
    Remove {
        at: u16,
    },
    /// Appends `text` to segment `segment` (0 header, 1 payload, 2 signature).
    Extend {
        segment: u8,
        text: String,
    },
    /// The payload of a token with other claims, under this signature.
    SwapPayload {
        sub: String,
    },
}

fn sign(key: u8, claims: &Value, kind: Option<&str>) -> String {
    match key % 3 {
        0 => key_pair(SigningAlg::EdDSA).signing.sign_jwt(claims, kind),
        1 => key_pair(SigningAlg::ES256).signing.sign_jwt(claims, kind),
        _ => mac_key("fuzz").sign_jwt(claims),
    }
}

fn verify(key: u8, token: &str) -> Result<Value, tessera_keys::JwsError> {
    match key % 3 {
        0 => verify_compact(token, &key_pair(SigningAlg::EdDSA).verifying),
        1 => verify_compact(token, &key_pair(SigningAlg::ES256).verifying),
        _ => mac_key("fuzz").verify_jwt(token),
    }
}

fuzz_target!(|input: Input| {
    let claims = json!({"sub": input.sub, "n": input.n});
    let token = sign(input.key, &claims, input.kind.as_deref());
    assert_eq!(
        verify(input.key, &token).expect("own token verifies"),
        claims
    );

    let mut bytes = token.clone().into_bytes();
    match input.tamper {
        Tamper::Replace { at, byte } => {
            let at = usize::from(at) % bytes.len();
            bytes[at] = byte;
        }
        Tamper::Insert { at, byte } => {
            let at = usize::from(at) % (bytes.len() + 1);
            bytes.insert(at, byte);
        }
        Tamper::Remove { at } => {
            let at = usize::from(at) % bytes.len();
            bytes.remove(at);
        }
        Tamper::Extend { segment, text } => {
            let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
            parts[usize::from(segment) % 3].push_str(&text);
            bytes = parts.join(".").into_bytes();
        }
        Tamper::SwapPayload { sub } => {
            let other = sign(input.key, &json!({"sub": sub, "n": input.n}), None);
            let mut parts: Vec<&str> = token.split('.').collect();
            parts[1] = other.split('.').nth(1).expect("three segments");
            bytes = parts.join(".").into_bytes();
        }
    }
    let Ok(tampered) = String::from_utf8(bytes) else {
        return;
    };
    if tampered != token {
        assert!(
            verify(input.key, &tampered).is_err(),
            "a tampered token verified: {token} -> {tampered}"
        );
    }
});
