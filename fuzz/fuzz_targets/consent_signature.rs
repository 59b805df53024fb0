//! Consent signatures as a wallet sends them (hex or base64url), checked
//! against the key a DID names: Ethereum `personal_sign` (secp256k1
//! recovery) and Ed25519 `did:key`.
//!
//! Asserts: nothing panics on any key, message and signature text; a valid
//! signature made here verifies, and the same signature with one byte
//! changed, over a changed message, or checked against another key never
//! verifies (the recovery id's two spellings, 27/28 and 0/1, are the one
//! allowed variation).
#![no_main]

use arbitrary::Arbitrary;
use ed25519_dalek::Signer as _;
use libfuzzer_sys::fuzz_target;
use sha3::{Digest, Keccak256};
use std::sync::OnceLock;
use tessera_consent::{verify_signature, DidKey};

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    /// Anything at all, against an arbitrary key.
    Raw {
        ethereum: bool,
        key: [u8; 32],
        message: &'a str,
        signature: &'a str,
    },
    /// A real signature, then one change.
    Tamper {
        ethereum: bool,
        message: &'a str,
        change: Change<'a>,
        base64: bool,
    },
}

#[derive(Debug, Arbitrary)]
enum Change<'a> {
    None,
    Byte { at: u8, value: u8 },
    Message(&'a str),
    OtherKey,
}

struct Keys {
    eth: k256::ecdsa::SigningKey,
    eth_address: [u8; 20],
    ed: ed25519_dalek::SigningKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let eth = k256::ecdsa::SigningKey::from_slice(&[0x11; 32]).expect("valid scalar");
        let point = eth.verifying_key().to_encoded_point(false);
        let hash = Keccak256::digest(&point.as_bytes()[1..]);
        let mut eth_address = [0u8; 20];
        eth_address.copy_from_slice(&hash[12..]);
        let ed = ed25519_dalek::SigningKey::from_bytes(&[0x22; 32]);
        Keys {
            eth,
            eth_address,
            ed,
        }
    })
}

fn personal_sign(key: &k256::ecdsa::SigningKey, message: &str) -> Vec<u8> {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(message.len().to_string().as_bytes());
    h.update(message.as_bytes());
    let (sig, recid) = key
        .sign_prehash_recoverable(&h.finalize())
        .expect("signing a hash");
    let mut out = sig.to_bytes().to_vec();
    out.push(27 + recid.to_byte());
    out
}

/// The recovery id a `v` byte stands for (27/0 and 28/1 are the same).
fn recovery_id(v: u8) -> Option<u8> {
    match v {
        27 | 0 => Some(0),
        28 | 1 => Some(1),
        _ => None,
    }
}

fuzz_target!(|input: Input| match input {
    Input::Raw {
        ethereum,
        key,
        message,
        signature,
    } => {
        let key = if ethereum {
            let mut a = [0u8; 20];
            a.copy_from_slice(&key[..20]);
            DidKey::EthereumAddress(a)
        } else {
            DidKey::Ed25519(key)
        };
        let _ = verify_signature(&key, message, signature);
    }
    Input::Tamper {
        ethereum,
        message,
        change,
        base64,
    } => {
        use base64::Engine;
        let k = keys();
        let (key, mut sig) = if ethereum {
            (
                DidKey::EthereumAddress(k.eth_address),
                personal_sign(&k.eth, message),
            )
        } else {
            (
                DidKey::Ed25519(k.ed.verifying_key().to_bytes()),
                k.ed.sign(message.as_bytes()).to_bytes().to_vec(),
            )
        };
        let encode = |sig: &[u8]| {
            if base64 && !ethereum {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
            } else {
                format!("0x{}", hex::encode(sig))
            }
        };
        assert_eq!(
            verify_signature(&key, message, &encode(&sig)),
            Ok(()),
            "a fresh signature verifies"
        );
        let (message, key) = match change {
            Change::None => return,
            Change::Byte { at, value } => {
                let at = usize::from(at) % sig.len();
                let same_recovery_id =
                    ethereum && at == 64 && recovery_id(value) == recovery_id(sig[64]);
                if sig[at] == value || same_recovery_id {
                    return;
                }
                sig[at] = value;
                (message.to_string(), key)
            }
            Change::Message(other) if other != message => (other.to_string(), key),
            Change::Message(_) => return,
            Change::OtherKey => {
                let other = match key {
                    DidKey::EthereumAddress(mut a) => {
                        a[0] ^= 1;
                        DidKey::EthereumAddress(a)
                    }
                    DidKey::Ed25519(_) => DidKey::Ed25519(
                        ed25519_dalek::SigningKey::from_bytes(&[0x33; 32])
                            .verifying_key()
                            .to_bytes(),
                    ),
                };
                (message.to_string(), other)
            }
        };
        assert!(
            verify_signature(&key, &message, &encode(&sig)).is_err(),
            "a changed signature, message or key verified"
        );
    }
});
