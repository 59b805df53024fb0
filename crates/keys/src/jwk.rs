//! JSON Web Key and key-set representations (RFC 7517).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    /// Empty when the issuer gave none.
    #[serde(default)]
    pub kid: String,
    pub kty: String,
    /// Optional in JWKS published by some issuers; inferred when unambiguous.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alg: Option<String>,
    #[serde(rename = "use", skip_serializing_if = "Option::is_none", default)]
    pub use_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VerifyingKey;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;

    fn field() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(".{0,40}")
    }

    proptest! {
        /// Any JWK set serialises and parses back equal.
        #[test]
        fn jwk_sets_round_trip_through_json(
            keys in proptest::collection::vec(
                (".{0,20}", ".{0,8}", field(), field(), field(), field(), field(), field(), field()),
                0..4,
            )
        ) {
            let set = JwkSet {
                keys: keys
                    .into_iter()
                    .map(|(kid, kty, alg, use_, n, e, crv, x, y)| Jwk { kid, kty, alg, use_, n, e, crv, x, y })
                    .collect(),
            };
            let json = serde_json::to_string(&set).expect("serialises");
            prop_assert_eq!(serde_json::from_str::<JwkSet>(&json).expect("parses"), set);
        }

        /// An EC or OKP key read from a JWK renders the same JWK again.
        #[test]
        fn keys_round_trip_through_their_jwk(
            x in proptest::array::uniform32(any::<u8>()),
            y in proptest::array::uniform32(any::<u8>()),
            ec in any::<bool>(),
        ) {
            let b64 = |b: &[u8]| Some(URL_SAFE_NO_PAD.encode(b));
            let jwk = Jwk {
                kid: "k".into(),
                kty: if ec { "EC" } else { "OKP" }.into(),
                alg: Some(if ec { "ES256" } else { "EdDSA" }.into()),
                use_: Some("sig".into()),
                n: None,
                e: None,
                crv: Some(if ec { "P-256" } else { "Ed25519" }.into()),
                x: b64(&x),
                y: if ec { b64(&y) } else { None },
            };
            let key = VerifyingKey::from_jwk(&jwk).expect("well-formed JWK");
            prop_assert_eq!(key.jwk(), jwk);
        }
    }
}
