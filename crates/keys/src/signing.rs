//! Key generation and the parsed signing/verifying keys. A key is parsed once
//! (from sealed PKCS#8 or from SPKI) and then used for every token it signs or
//! checks; nothing here touches the database or the file system.

use crate::jwk::Jwk;
use crate::jws::{self, JwsHeader};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use tessera_core::SigningAlg;

/// DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte point follows.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32-byte key follows.
const ED25519_SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const RSA_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key material is not a valid {0} key")]
    Invalid(SigningAlg),
    #[error("key generation failed: {0}")]
    Generation(String),
}

/// A freshly generated key pair, before sealing.
pub struct GeneratedKey {
    pub kid: String,
    pub alg: SigningAlg,
    /// PKCS#8 DER of the private key: seal it before it goes anywhere.
    pub pkcs8_der: Vec<u8>,
    pub spki_der: Vec<u8>,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair for `alg`. The key id is the RFC 7638 thumbprint of
/// the public key. RSA generation is CPU-heavy: call it off the async runtime.
pub fn generate(alg: SigningAlg) -> Result<GeneratedKey, KeyError> {
    let rng = SystemRandom::new();
    let (pkcs8_der, spki_der) = match alg {
        SigningAlg::RS256 | SigningAlg::RS512 => {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
                .map_err(|e| KeyError::Generation(e.to_string()))?;
            let pkcs8 = key
                .to_pkcs8_der()
                .map_err(|e| KeyError::Generation(e.to_string()))?;
            let spki = rsa::RsaPublicKey::from(&key)
                .to_public_key_der()
                .map_err(|e| KeyError::Generation(e.to_string()))?;
            (pkcs8.as_bytes().to_vec(), spki.as_bytes().to_vec())
        }
        SigningAlg::ES256 => {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|e| KeyError::Generation(e.to_string()))?;
            let pair = EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                doc.as_ref(),
                &rng,
            )
            .map_err(|e| KeyError::Generation(e.to_string()))?;
            let spki = [P256_SPKI_PREFIX, pair.public_key().as_ref()].concat();
            (doc.as_ref().to_vec(), spki)
        }
        SigningAlg::EdDSA => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| KeyError::Generation(e.to_string()))?;
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map_err(|e| KeyError::Generation(e.to_string()))?;
            let spki = [ED25519_SPKI_PREFIX, pair.public_key().as_ref()].concat();
            (doc.as_ref().to_vec(), spki)
        }
    };
    let verifying = VerifyingKey::from_spki(String::new(), alg, &spki_der)?;
    Ok(GeneratedKey {
        kid: verifying.thumbprint(),
        alg,
        pkcs8_der,
        spki_der,
    })
}

enum Signer {
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A parsed private key that signs compact JWS tokens.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    signer: Signer,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn from_pkcs8(kid: String, alg: SigningAlg, der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let bad = |_| KeyError::Invalid(alg);
        let signer = match alg {
            SigningAlg::RS256 => Signer::Rsa(
                RsaKeyPair::from_pkcs8(der).map_err(bad)?,
                &signature::RSA_PKCS1_SHA256,
            ),
            SigningAlg::RS512 => Signer::Rsa(
                RsaKeyPair::from_pkcs8(der).map_err(bad)?,
                &signature::RSA_PKCS1_SHA512,
            ),
            SigningAlg::ES256 => Signer::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                    .map_err(bad)?,
            ),
            SigningAlg::EdDSA => Signer::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(bad)?),
        };
        Ok(Self {
            kid,
            alg,
            signer,
            rng,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// Raw signature over `msg` in JWS form (PKCS#1 v1.5, ECDSA r‖s, Ed25519).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        // Signing with a key ring accepted at parse time fails only if the OS
        // RNG fails (RSA blinding, ECDSA nonces); nothing sensible can follow.
        #[allow(clippy::expect_used)]
        match &self.signer {
            Signer::Rsa(pair, enc) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(*enc, &self.rng, msg, &mut sig)
                    .expect("RSA signing");
                sig
            }
            Signer::Ecdsa(pair) => pair
                .sign(&self.rng, msg)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Signer::Ed25519(pair) => pair.sign(msg).as_ref().to_vec(),
        }
    }

    /// Signs `claims` as a compact JWS with header `{alg, typ: "JWT", kid}`
    /// plus `kind` when given (machine tokens).
    pub fn sign_jwt<T: Serialize>(&self, claims: &T, kind: Option<&str>) -> String {
        let header = JwsHeader {
            alg: self.alg.as_str().to_string(),
            typ: Some("JWT".to_string()),
            kid: Some(self.kid.clone()),
            kind: kind.map(str::to_string),
        };
        jws::encode(&header, claims, |input| self.sign(input))
    }
}

#[derive(Clone)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { point: Vec<u8> },
    Ed25519 { key: Vec<u8> },
}

/// A parsed public key bound to one algorithm. The key, not the token header,
/// decides the algorithm: a token whose `alg` differs is rejected, so `none`
/// and HMAC-with-the-public-key confusion cannot happen.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: SigningAlg,
    spki_der: Vec<u8>,
    public: PublicKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    pub fn from_spki(kid: String, alg: SigningAlg, der: &[u8]) -> Result<Self, KeyError> {
        let public = match alg {
            SigningAlg::RS256 | SigningAlg::RS512 => {
                let key = rsa::RsaPublicKey::from_public_key_der(der)
                    .map_err(|_| KeyError::Invalid(alg))?;
                PublicKey::Rsa {
                    n: key.n().to_bytes_be(),
                    e: key.e().to_bytes_be(),
                }
            }
            SigningAlg::ES256 => match der.strip_prefix(P256_SPKI_PREFIX) {
                Some(point) if point.len() == 65 && point[0] == 4 => PublicKey::Ec {
                    point: point.to_vec(),
                },
                _ => return Err(KeyError::Invalid(alg)),
            },
            SigningAlg::EdDSA => match der.strip_prefix(ED25519_SPKI_PREFIX) {
                Some(key) if key.len() == 32 => PublicKey::Ed25519 { key: key.to_vec() },
                _ => return Err(KeyError::Invalid(alg)),
            },
        };
        Ok(Self {
            kid,
            alg,
            spki_der: der.to_vec(),
            public,
        })
    }

    /// Builds a key from a JWK fetched from an issuer's JWKS. Only signature
    /// keys of the supported algorithms are accepted; `alg` must be present
    /// so the key, not the token, decides the algorithm.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        // Without `alg`, infer it where the key type admits one algorithm
        // (RSA keys are taken as RS256, as issuers that omit `alg` use it).
        let alg: SigningAlg = match (jwk.alg.as_deref(), jwk.kty.as_str(), jwk.crv.as_deref()) {
            (Some(a), _, _) => a
                .parse()
                .map_err(|_| KeyError::Invalid(SigningAlg::RS256))?,
            (None, "RSA", _) => SigningAlg::RS256,
            (None, "EC", Some("P-256")) => SigningAlg::ES256,
            (None, "OKP", Some("Ed25519")) => SigningAlg::EdDSA,
            _ => return Err(KeyError::Invalid(SigningAlg::RS256)),
        };
        let bad = || KeyError::Invalid(alg);
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(bad());
        }
        let field = |v: &Option<String>| -> Result<Vec<u8>, KeyError> {
            B64.decode(v.as_deref().ok_or_else(bad)?).map_err(|_| bad())
        };
        let spki = match (alg, jwk.kty.as_str()) {
            (SigningAlg::RS256 | SigningAlg::RS512, "RSA") => {
                let n = rsa::BigUint::from_bytes_be(&field(&jwk.n)?);
                let e = rsa::BigUint::from_bytes_be(&field(&jwk.e)?);
                let key = rsa::RsaPublicKey::new(n, e).map_err(|_| bad())?;
                key.to_public_key_der()
                    .map_err(|_| bad())?
                    .as_bytes()
                    .to_vec()
            }
            (SigningAlg::ES256, "EC") if jwk.crv.as_deref() == Some("P-256") => {
                let (x, y) = (field(&jwk.x)?, field(&jwk.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad());
                }
                [P256_SPKI_PREFIX, &[4u8], &x, &y].concat()
            }
            (SigningAlg::EdDSA, "OKP") if jwk.crv.as_deref() == Some("Ed25519") => {
                [ED25519_SPKI_PREFIX, &field(&jwk.x)?].concat()
            }
            _ => return Err(bad()),
        };
        Self::from_spki(jwk.kid.clone(), alg, &spki)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// X.509 SubjectPublicKeyInfo DER (Keycloak's realm `public_key`, base64).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.public {
            PublicKey::Rsa { n, e } => {
                let params = match self.alg {
                    SigningAlg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    _ => &signature::RSA_PKCS1_2048_8192_SHA256,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .is_ok()
            }
            PublicKey::Ec { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            PublicKey::Ed25519 { key } => UnparsedPublicKey::new(&signature::ED25519, key)
                .verify(msg, sig)
                .is_ok(),
        }
    }

    /// The public JWK (RFC 7517) for the JWKS endpoint.
    pub fn jwk(&self) -> Jwk {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let mut jwk = Jwk {
            kid: self.kid.clone(),
            kty: String::new(),
            alg: Some(self.alg.as_str().to_string()),
            use_: Some("sig".to_string()),
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        };
        match &self.public {
            PublicKey::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                jwk.n = Some(b64(n));
                jwk.e = Some(b64(e));
            }
            PublicKey::Ec { point } => {
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.x = Some(b64(&point[1..33]));
                jwk.y = Some(b64(&point[33..65]));
            }
            PublicKey::Ed25519 { key } => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64(key));
            }
        }
        jwk
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url): used as the key id.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = match &self.public {
            PublicKey::Rsa { .. } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                jwk.e.unwrap_or_default(),
                jwk.n.unwrap_or_default()
            ),
            PublicKey::Ec { .. } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk.x.unwrap_or_default(),
                jwk.y.unwrap_or_default()
            ),
            PublicKey::Ed25519 { .. } => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                jwk.x.unwrap_or_default()
            ),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::{verify_compact, JwsError};
    use serde_json::json;

    fn pair(alg: SigningAlg) -> (SigningKey, VerifyingKey) {
        let g = generate(alg).expect("generate");
        let s = SigningKey::from_pkcs8(g.kid.clone(), alg, &g.pkcs8_der).expect("parse private");
        let v = VerifyingKey::from_spki(g.kid.clone(), alg, &g.spki_der).expect("parse public");
        (s, v)
    }

    #[test]
    fn every_algorithm_round_trips_and_rejects_tampering() {
        for alg in [
            SigningAlg::RS256,
            SigningAlg::RS512,
            SigningAlg::ES256,
            SigningAlg::EdDSA,
        ] {
            let (s, v) = pair(alg);
            assert_eq!(v.thumbprint(), s.kid(), "kid is the thumbprint");
            let token = s.sign_jwt(&json!({"sub": "alice"}), None);
            let claims = verify_compact(&token, &v).expect("verifies");
            assert_eq!(claims["sub"], "alice");
            // Flip one character of the payload.
            let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
            parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#);
            assert!(matches!(
                verify_compact(&parts.join("."), &v),
                Err(JwsError::BadSignature)
            ));
            let jwk = v.jwk();
            assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()));
            let from_jwk = VerifyingKey::from_jwk(&jwk).expect("from JWK");
            assert_eq!(from_jwk.spki_der(), v.spki_der(), "JWK round trip");
            assert!(verify_compact(&token, &from_jwk).is_ok());
            let mut bare = jwk.clone();
            bare.alg = None;
            bare.use_ = None;
            if alg != SigningAlg::RS512 {
                assert_eq!(
                    VerifyingKey::from_jwk(&bare).expect("inferred").alg(),
                    alg,
                    "alg inferred"
                );
            }
            bare.use_ = Some("enc".into());
            assert!(
                VerifyingKey::from_jwk(&bare).is_err(),
                "encryption keys are not signature keys"
            );
        }
    }

    #[test]
    fn a_token_whose_alg_differs_from_the_key_is_rejected() {
        let (s, v) = pair(SigningAlg::RS256);
        let token = s.sign_jwt(&json!({"sub": "a"}), None);
        let payload = token.split('.').nth(1).expect("payload");
        for alg in ["none", "HS256", "RS512"] {
            let header =
                URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, v.kid()));
            let forged = format!("{header}.{payload}.");
            assert!(matches!(
                verify_compact(&forged, &v),
                Err(JwsError::AlgorithmMismatch)
            ));
        }
    }

    #[test]
    fn keys_of_one_alg_do_not_verify_another_keys_tokens() {
        let (s1, _) = pair(SigningAlg::ES256);
        let (_, v2) = pair(SigningAlg::ES256);
        let token = s1.sign_jwt(&json!({"sub": "a"}), Some("machine_token"));
        assert!(verify_compact(&token, &v2).is_err());
        assert_eq!(
            crate::jws::decode_unverified_header(&token)
                .expect("header")
                .kind
                .as_deref(),
            Some("machine_token")
        );
    }
}
