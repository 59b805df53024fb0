//! Server-private HS256 tokens: JWTs only this server issues and checks
//! (consent challenges). The key is derived from the master key per purpose,
//! so these tokens never verify against any published key and can never be
//! mistaken for access tokens by a relying party that reads the JWKS.

use crate::jws::{self, JwsError, JwsHeader};
use crate::MasterKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::Serialize;

pub struct MacKey(hmac::Key);

impl MasterKey {
    /// The HMAC-SHA256 key for one purpose (e.g. `consent-challenge/<realm id>`).
    pub fn mac_key(&self, purpose: &str) -> MacKey {
        let derived = self.derive_secret(&format!("mac:{purpose}"));
        MacKey(hmac::Key::new(hmac::HMAC_SHA256, derived.as_bytes()))
    }
}

impl MacKey {
    /// A base64url HMAC of `data` (CSRF tokens).
    pub fn tag(&self, data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, data).as_ref())
    }

    /// Checks a `tag` in constant time.
    pub fn verify_tag(&self, data: &[u8], tag: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(tag)
            .is_ok_and(|t| hmac::verify(&self.0, data, &t).is_ok())
    }

    pub fn sign_jwt<T: Serialize>(&self, claims: &T) -> String {
        let header = JwsHeader {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
            kid: None,
            kind: None,
        };
        jws::encode(&header, claims, |input| {
            hmac::sign(&self.0, input).as_ref().to_vec()
        })
    }

    /// Checks the MAC (in constant time) and returns the claims object.
    pub fn verify_jwt(&self, token: &str) -> Result<serde_json::Value, JwsError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed);
        };
        if jws::decode_unverified_header(token)?.alg != "HS256" {
            return Err(JwsError::AlgorithmMismatch);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwsError::Malformed)?;
        hmac::verify(&self.0, &token.as_bytes()[..h.len() + 1 + p.len()], &sig)
            .map_err(|_| JwsError::BadSignature)?;
        jws::decode_claims(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_tamper() {
        let master = MasterKey::generate();
        let key = master.mac_key("consent-challenge/r1");
        let token = key.sign_jwt(&json!({"sub": "did:ethr:0xabc", "n": 1}));
        assert_eq!(key.verify_jwt(&token).expect("valid")["n"], 1);
        // Another purpose, another key.
        assert_eq!(
            master
                .mac_key("consent-challenge/r2")
                .verify_jwt(&token)
                .err(),
            Some(JwsError::BadSignature)
        );
        // A changed payload fails.
        let parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"did:ethr:0xdef","n":1}"#);
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert_eq!(
            key.verify_jwt(&tampered).err(),
            Some(JwsError::BadSignature)
        );
        // alg none / other algs are refused before the MAC.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(
            key.verify_jwt(&none).err(),
            Some(JwsError::AlgorithmMismatch)
        );
        assert_eq!(key.verify_jwt("a.b").err(), Some(JwsError::Malformed));
    }
}
