//! DIDs and context names, parsed once ("parse, don't validate").
//!
//! Ethereum-address methods (`did:ethr`, `did:pkh:eip155`, `did:vda`) are
//! lower-cased, as Verida does, so one wallet has one identity whatever the
//! checksum casing it was given in; `did:key` is kept exactly as given,
//! because base58 is case-sensitive.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DidError {
    #[error("not a DID: expected did:<method>:<id>")]
    Malformed,
    #[error("unsupported DID method: {0} (supported: ethr, pkh (eip155), vda, key)")]
    UnsupportedMethod(String),
    #[error("the DID does not contain a valid Ethereum address")]
    BadAddress,
    #[error("did:key must be a base58btc Ed25519 key (z6Mk...)")]
    BadKey,
    #[error("context name must be 1-256 printable characters without double quotes")]
    BadContextName,
}

/// The key a DID stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DidKey {
    /// A secp256k1 key, known by its 20-byte Ethereum address.
    EthereumAddress([u8; 20]),
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
}

/// A parsed, normalised DID and the key it names.
#[derive(Clone, PartialEq, Eq)]
pub struct Did {
    normalized: String,
    method: String,
}

impl Did {
    /// Parses syntax only; the key comes from a [`DidResolver`].
    pub fn parse(raw: &str) -> Result<Self, DidError> {
        let raw = raw.trim();
        let rest = raw
            .strip_prefix("did:")
            .or_else(|| raw.strip_prefix("DID:"))
            .ok_or(DidError::Malformed)?;
        let (method, id) = rest.split_once(':').ok_or(DidError::Malformed)?;
        let method = method.to_ascii_lowercase();
        if id.is_empty() || raw.len() > 512 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DidError::Malformed);
        }
        let normalized = match method.as_str() {
            "ethr" | "pkh" | "vda" => format!("did:{}", rest.to_ascii_lowercase()),
            _ => format!("did:{method}:{id}"),
        };
        Ok(Self { normalized, method })
    }

    /// The canonical form: what consent messages and tokens use.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    pub fn method(&self) -> &str {
        &self.method
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({})", self.normalized)
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized)
    }
}

/// Finds the key a DID stands for. Offline methods are built in; a method
/// that needs a network lookup (a DID document) is added by implementing
/// this trait and chaining to [`OfflineResolver`].
pub trait DidResolver: Send + Sync {
    fn resolve(&self, did: &Did) -> Result<DidKey, DidError>;
}

/// Resolves the methods whose key is in the identifier itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct OfflineResolver;

impl DidResolver for OfflineResolver {
    fn resolve(&self, did: &Did) -> Result<DidKey, DidError> {
        let id = &did.normalized[did.method.len() + 5..];
        match did.method.as_str() {
            // did:ethr:[network:]0xADDR and did:vda:[network:]0xADDR
            "ethr" | "vda" => address(id.rsplit(':').next().unwrap_or(id)),
            // did:pkh:eip155:<chain id>:0xADDR
            "pkh" => {
                let parts: Vec<&str> = id.split(':').collect();
                match parts.as_slice() {
                    ["eip155", chain, addr]
                        if !chain.is_empty() && chain.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        address(addr)
                    }
                    ["eip155", ..] => Err(DidError::BadAddress),
                    _ => Err(DidError::UnsupportedMethod(format!(
                        "pkh:{}",
                        parts.first().unwrap_or(&"")
                    ))),
                }
            }
            "key" => ed25519_multibase(id),
            other => Err(DidError::UnsupportedMethod(other.to_string())),
        }
    }
}

fn address(s: &str) -> Result<DidKey, DidError> {
    let hex_part = s.strip_prefix("0x").ok_or(DidError::BadAddress)?;
    if hex_part.len() != 40 {
        return Err(DidError::BadAddress);
    }
    let bytes = hex::decode(hex_part).map_err(|_| DidError::BadAddress)?;
    let mut a = [0u8; 20];
    a.copy_from_slice(&bytes);
    Ok(DidKey::EthereumAddress(a))
}

/// `z` + base58btc(0xed 0x01 ‖ 32-byte Ed25519 key).
fn ed25519_multibase(id: &str) -> Result<DidKey, DidError> {
    let b58 = id.strip_prefix('z').ok_or(DidError::BadKey)?;
    let bytes = bs58::decode(b58).into_vec().map_err(|_| DidError::BadKey)?;
    match bytes.as_slice() {
        [0xed, 0x01, key @ ..] if key.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(key);
            Ok(DidKey::Ed25519(k))
        }
        _ => Err(DidError::BadKey),
    }
}

/// A Verida application context name, e.g. `Verida: Vault`. Double quotes and
/// control characters are refused: the consent message quotes the name and
/// separates fields by newlines, so either could forge its structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextName(String);

pub const MAX_CONTEXT_NAME: usize = 256;

impl ContextName {
    pub fn parse(raw: &str) -> Result<Self, DidError> {
        let ok = !raw.trim().is_empty()
            && raw.chars().count() <= MAX_CONTEXT_NAME
            && !raw.chars().any(|c| c == '"' || c.is_control());
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(DidError::BadContextName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    #[test]
    fn ethereum_methods_are_lowercased_and_resolve_to_the_address() {
        let want = DidKey::EthereumAddress({
            let mut a = [0u8; 20];
            a.copy_from_slice(
                &hex::decode("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").expect("hex"),
            );
            a
        });
        for (raw, norm) in [
            (
                format!("did:ethr:{ADDR}"),
                format!("did:ethr:{}", ADDR.to_lowercase()),
            ),
            (
                format!("did:ethr:0x89:{ADDR}"),
                format!("did:ethr:0x89:{}", ADDR.to_lowercase()),
            ),
            (
                format!("did:vda:testnet:{ADDR}"),
                format!("did:vda:testnet:{}", ADDR.to_lowercase()),
            ),
            (
                format!("did:pkh:eip155:1:{ADDR}"),
                format!("did:pkh:eip155:1:{}", ADDR.to_lowercase()),
            ),
        ] {
            let did = Did::parse(&raw).expect("parse");
            assert_eq!(did.as_str(), norm);
            assert_eq!(OfflineResolver.resolve(&did), Ok(want.clone()), "{raw}");
        }
    }

    #[test]
    fn did_key_keeps_its_case_and_decodes_ed25519() {
        // The did:key test vector from the W3C CCG did:key spec.
        let raw = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
        let did = Did::parse(raw).expect("parse");
        assert_eq!(did.as_str(), raw);
        assert!(matches!(
            OfflineResolver.resolve(&did),
            Ok(DidKey::Ed25519(_))
        ));
        let lowered = Did::parse(&raw.to_lowercase()).expect("syntax is fine");
        assert!(
            OfflineResolver.resolve(&lowered).is_err(),
            "base58 is case-sensitive"
        );
    }

    #[test]
    fn bad_dids_are_refused_clearly() {
        assert_eq!(Did::parse("ethr:0xabc").err(), Some(DidError::Malformed));
        assert_eq!(Did::parse("did:ethr:").err(), Some(DidError::Malformed));
        assert_eq!(
            Did::parse("did:ethr:0x12 34").err(),
            Some(DidError::Malformed)
        );
        let resolve = |s: &str| OfflineResolver.resolve(&Did::parse(s).expect("syntax"));
        assert_eq!(resolve("did:ethr:0x1234"), Err(DidError::BadAddress));
        assert_eq!(
            resolve("did:ethr:0xZZaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
            Err(DidError::BadAddress)
        );
        assert_eq!(
            resolve("did:pkh:eip155:x:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
            Err(DidError::BadAddress)
        );
        assert_eq!(
            resolve("did:web:example.com"),
            Err(DidError::UnsupportedMethod("web".into()))
        );
        assert!(matches!(
            resolve("did:pkh:solana:abc"),
            Err(DidError::UnsupportedMethod(_))
        ));
        assert_eq!(
            resolve("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2d"),
            Err(DidError::BadKey)
        );
    }

    #[test]
    fn context_names_cannot_forge_the_message() {
        assert!(ContextName::parse("Verida: Vault").is_ok());
        assert!(ContextName::parse("").is_err());
        assert!(ContextName::parse("a\"?\n\ndid:ethr:0x0\nid").is_err());
        assert!(ContextName::parse("line\nbreak").is_err());
        assert!(ContextName::parse(&"x".repeat(MAX_CONTEXT_NAME + 1)).is_err());
        assert!(ContextName::parse(&"é".repeat(MAX_CONTEXT_NAME)).is_ok());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Parsing is idempotent: the normal form parses to the same DID and
        /// names the same key.
        #[test]
        fn parse_display_parse(raw in "(did|DID):(ethr|Ethr|pkh|vda|key|web):[!-~]{1,60}") {
            let did = Did::parse(&raw).expect("syntax is valid");
            let again = Did::parse(&did.to_string()).expect("the normal form parses");
            prop_assert_eq!(&again, &did);
            prop_assert_eq!(OfflineResolver.resolve(&again), OfflineResolver.resolve(&did));
        }

        /// One Ethereum address is one DID whatever its casing, and resolves
        /// to its bytes.
        #[test]
        fn ethereum_addresses_are_case_insensitive(
            address in proptest::array::uniform20(any::<u8>()),
            method in "ethr|vda|pkh:eip155:1",
            upper in any::<bool>(),
        ) {
            let hex = hex::encode(address);
            let raw = format!("did:{method}:0x{}", if upper { hex.to_uppercase() } else { hex.clone() });
            let did = Did::parse(&raw).expect("valid");
            prop_assert_eq!(did.as_str(), format!("did:{method}:0x{hex}"));
            prop_assert_eq!(OfflineResolver.resolve(&did), Ok(DidKey::EthereumAddress(address)));
        }

        /// did:key round trip: an Ed25519 key encoded as a DID decodes to itself.
        #[test]
        fn did_key_round_trip(key in proptest::array::uniform32(any::<u8>())) {
            let mut multicodec = vec![0xed, 0x01];
            multicodec.extend_from_slice(&key);
            let raw = format!("did:key:z{}", bs58::encode(multicodec).into_string());
            let did = Did::parse(&raw).expect("valid");
            prop_assert_eq!(did.as_str(), raw);
            prop_assert_eq!(OfflineResolver.resolve(&did), Ok(DidKey::Ed25519(key)));
        }

        /// A context name is accepted exactly when it cannot forge a message.
        #[test]
        fn context_names(raw in "\\PC{0,20}[\"\n]?\\PC{0,5}") {
            let forging = raw.contains('"') || raw.chars().any(char::is_control);
            let parsed = ContextName::parse(&raw);
            prop_assert_eq!(parsed.is_ok(), !forging && !raw.trim().is_empty());
            if let Ok(name) = parsed {
                prop_assert_eq!(name.as_str(), raw);
            }
        }
    }
}
