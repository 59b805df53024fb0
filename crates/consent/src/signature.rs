//! Signature verification for consent messages.
//!
//! - Ethereum (`did:ethr`, `did:pkh:eip155`, `did:vda`): EIP-191
//!   `personal_sign` — keccak256 of `"\x19Ethereum Signed Message:\n" + len +
//!   message`, a 65-byte `r ‖ s ‖ v` signature in hex, `v` 27/28 or 0/1. The
//!   signer's address is recovered and compared with the DID's. High-`s`
//!   signatures are refused (EIP-2), so a signature cannot be re-shaped.
//! - Ed25519 (`did:key`): a 64-byte signature in hex or base64url, verified
//!   strictly (no small-order keys, canonical encodings only).

use crate::did::DidKey;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha3::{Digest, Keccak256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature is not valid hex or base64url")]
    Encoding,
    #[error("signature has the wrong length (Ethereum: 65 bytes, Ed25519: 64 bytes)")]
    Length,
    #[error("signature recovery id (v) must be 27, 28, 0 or 1")]
    RecoveryId,
    #[error("signature s value is not in the lower half of the curve order")]
    HighS,
    #[error("signature does not match the DID")]
    Mismatch,
}

/// Checks that `signature` over `message` was made by the key `key` names.
pub fn verify_signature(
    key: &DidKey,
    message: &str,
    signature: &str,
) -> Result<(), SignatureError> {
    match key {
        DidKey::EthereumAddress(address) => {
            if recover_address(message.as_bytes(), signature)? == *address {
                Ok(())
            } else {
                Err(SignatureError::Mismatch)
            }
        }
        DidKey::Ed25519(public) => {
            let bytes = decode(signature)?;
            let sig: [u8; 64] = bytes.try_into().map_err(|_| SignatureError::Length)?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(public)
                .map_err(|_| SignatureError::Mismatch)?;
            key.verify_strict(
                message.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&sig),
            )
            .map_err(|_| SignatureError::Mismatch)
        }
    }
}

/// Hex (with or without `0x`) or base64url (padded or not).
fn decode(s: &str) -> Result<Vec<u8>, SignatureError> {
    let s = s.trim();
    let hex_part = s.strip_prefix("0x").unwrap_or(s);
    if hex_part.len().is_multiple_of(2) && hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(hex_part).map_err(|_| SignatureError::Encoding);
    }
    URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .map_err(|_| SignatureError::Encoding)
}

fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// EIP-191 version 0x45: the hash `personal_sign` signs.
pub(crate) fn personal_message_hash(message: &[u8]) -> [u8; 32] {
    keccak(&[
        b"\x19Ethereum Signed Message:\n",
        message.len().to_string().as_bytes(),
        message,
    ])
}

fn recover_address(message: &[u8], signature: &str) -> Result<[u8; 20], SignatureError> {
    let hex_part = signature
        .trim()
        .strip_prefix("0x")
        .unwrap_or(signature.trim());
    let bytes = hex::decode(hex_part).map_err(|_| SignatureError::Encoding)?;
    if bytes.len() != 65 {
        return Err(SignatureError::Length);
    }
    let v = match bytes[64] {
        27 | 0 => 0u8,
        28 | 1 => 1u8,
        _ => return Err(SignatureError::RecoveryId),
    };
    let sig = Signature::from_slice(&bytes[..64]).map_err(|_| SignatureError::Mismatch)?;
    if sig.normalize_s().is_some() {
        return Err(SignatureError::HighS);
    }
    let recid = RecoveryId::from_byte(v).ok_or(SignatureError::RecoveryId)?;
    let key = VerifyingKey::recover_from_prehash(&personal_message_hash(message), &sig, recid)
        .map_err(|_| SignatureError::Mismatch)?;
    let point = key.to_encoded_point(false);
    let hash = keccak(&[&point.as_bytes()[1..]]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&hash[12..]);
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::did::{Did, DidResolver, OfflineResolver};

    fn eth_key(did: &str) -> DidKey {
        OfflineResolver
            .resolve(&Did::parse(did).expect("did"))
            .expect("key")
    }

    /// web3.js documentation vector: accounts.sign('Some data', 0x4c08...2318).
    #[test]
    fn matches_the_web3_personal_sign_vector() {
        let key = eth_key("did:ethr:0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
        let sig = "0xb91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a0291c";
        assert_eq!(
            hex::encode(personal_message_hash(b"Some data")),
            "1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655"
        );
        assert_eq!(verify_signature(&key, "Some data", sig), Ok(()));
        assert_eq!(
            verify_signature(&key, "Some data!", sig),
            Err(SignatureError::Mismatch)
        );
    }

    fn sign_eth(sk: &k256::ecdsa::SigningKey, msg: &str, v_base: u8) -> (String, [u8; 65]) {
        let (sig, recid) = sk
            .sign_prehash_recoverable(&personal_message_hash(msg.as_bytes()))
            .expect("sign");
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = recid.to_byte() + v_base;
        (format!("0x{}", hex::encode(out)), out)
    }

    fn did_of(sk: &k256::ecdsa::SigningKey) -> String {
        let point = sk.verifying_key().to_encoded_point(false);
        format!(
            "did:vda:testnet:0x{}",
            hex::encode(&keccak(&[&point.as_bytes()[1..]])[12..])
        )
    }

    #[test]
    fn ethereum_signatures_both_v_styles_and_hostile_variants() {
        let sk = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let key = eth_key(&did_of(&sk));
        let msg = "Authenticate this application context: \"Demo\"?\n\ndid:vda:x\nid";
        for v_base in [27, 0] {
            let (sig, _) = sign_eth(&sk, msg, v_base);
            assert_eq!(verify_signature(&key, msg, &sig), Ok(()), "v base {v_base}");
        }
        let (sig, raw) = sign_eth(&sk, msg, 27);
        // Another key's signature, another message.
        let other = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        assert_eq!(
            verify_signature(&key, msg, &sign_eth(&other, msg, 27).0),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&key, "another message", &sig),
            Err(SignatureError::Mismatch)
        );
        // Wrong length, bad hex, bad v.
        assert_eq!(
            verify_signature(&key, msg, &sig[..sig.len() - 2]),
            Err(SignatureError::Length)
        );
        assert_eq!(
            verify_signature(&key, msg, "0xzz"),
            Err(SignatureError::Encoding)
        );
        let mut bad_v = raw;
        bad_v[64] = 29;
        assert_eq!(
            verify_signature(&key, msg, &hex::encode(bad_v)),
            Err(SignatureError::RecoveryId)
        );
        // The high-s twin of a valid signature (s' = n - s, v flipped) is refused.
        let sig_obj = Signature::from_slice(&raw[..64]).expect("sig");
        let (r, s) = sig_obj.split_scalars();
        let high = Signature::from_scalars(r, -*s).expect("high-s");
        let mut twin = [0u8; 65];
        twin[..64].copy_from_slice(&high.to_bytes());
        twin[64] = if raw[64] == 27 { 28 } else { 27 };
        assert_eq!(
            verify_signature(&key, msg, &hex::encode(twin)),
            Err(SignatureError::HighS)
        );
    }

    #[test]
    fn ed25519_did_key_signatures_in_hex_and_base64url() {
        let sk = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let mut multicodec = vec![0xed, 0x01];
        multicodec.extend_from_slice(sk.verifying_key().as_bytes());
        let did = format!("did:key:z{}", bs58::encode(multicodec).into_string());
        let key = OfflineResolver
            .resolve(&Did::parse(&did).expect("did"))
            .expect("key");
        let msg = "Invalidate device for this application context: \"Demo\"?\n\ndid\ndevice";
        use ed25519_dalek::Signer;
        let sig = sk.sign(msg.as_bytes()).to_bytes();
        assert_eq!(verify_signature(&key, msg, &hex::encode(sig)), Ok(()));
        assert_eq!(
            verify_signature(&key, msg, &URL_SAFE_NO_PAD.encode(sig)),
            Ok(())
        );
        assert_eq!(
            verify_signature(&key, "other", &hex::encode(sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&key, msg, &hex::encode(&sig[..63])),
            Err(SignatureError::Length)
        );
        assert_eq!(
            verify_signature(&key, msg, "!!!"),
            Err(SignatureError::Encoding)
        );
        let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        assert_eq!(
            verify_signature(
                &key,
                msg,
                &hex::encode(other.sign(msg.as_bytes()).to_bytes())
            ),
            Err(SignatureError::Mismatch)
        );
    }
}
