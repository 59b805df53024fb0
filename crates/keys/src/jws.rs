//! Compact JWS encoding and verification. Claim checks (expiry, issuer, token
//! kind) belong to the caller; this module only answers "did this key sign
//! exactly these bytes with its own algorithm?".

use crate::signing::VerifyingKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The header fields Tessera writes and reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JwsHeader {
    pub alg: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub typ: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kid: Option<String>,
    /// Che's machine tokens carry `"kind": "machine_token"` in the header.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    #[error("token is not a well-formed compact JWS")]
    Malformed,
    #[error("token algorithm does not match the key")]
    AlgorithmMismatch,
    #[error("token signature is invalid")]
    BadSignature,
}

pub(crate) fn encode<T: Serialize>(
    header: &JwsHeader,
    claims: &T,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> String {
    // Serialising these plain structs and JSON values cannot fail.
    let h = serde_json::to_vec(header).unwrap_or_default();
    let c = serde_json::to_vec(claims).unwrap_or_default();
    let mut out = String::with_capacity((h.len() + c.len()) * 4 / 3 + 400);
    URL_SAFE_NO_PAD.encode_string(&h, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&c, &mut out);
    let sig = sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
    out
}

fn split(token: &str) -> Result<(&str, &str, &str), JwsError> {
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(JwsError::Malformed),
    }
}

/// Reads the header without checking anything, to find the `kid`.
pub fn decode_unverified_header(token: &str) -> Result<JwsHeader, JwsError> {
    let (h, _, _) = split(token)?;
    let bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwsError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)
}

/// Reads the `iss` claim without checking anything, to find the realm
/// whose keys must verify the token. Nothing else may rely on it before the
/// signature is checked.
pub fn decode_unverified_issuer(token: &str) -> Result<String, JwsError> {
    let (_, p, _) = split(token)?;
    match decode_claims(p)?.get("iss") {
        Some(serde_json::Value::String(iss)) => Ok(iss.clone()),
        _ => Err(JwsError::Malformed),
    }
}

/// Verifies `token` with `key` and returns its claims (a JSON object).
pub fn verify_compact(token: &str, key: &VerifyingKey) -> Result<serde_json::Value, JwsError> {
    let (h, p, s) = split(token)?;
    let header = decode_unverified_header(token)?;
    if header.alg != key.alg().as_str() {
        return Err(JwsError::AlgorithmMismatch);
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwsError::Malformed)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    if !key.verify(signing_input.as_bytes(), &sig) {
        return Err(JwsError::BadSignature);
    }
    decode_claims(p)
}

/// The payload segment as a JSON object (after its signature was checked).
pub(crate) fn decode_claims(payload: &str) -> Result<serde_json::Value, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwsError::Malformed)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)?;
    if !claims.is_object() {
        return Err(JwsError::Malformed);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any header we could write is read back equal, whatever follows it.
        #[test]
        fn headers_round_trip(
            alg in ".{0,12}",
            typ in proptest::option::of(".{0,12}"),
            kid in proptest::option::of(".{0,40}"),
            kind in proptest::option::of(".{0,20}"),
            rest in "[A-Za-z0-9_-]{0,20}\\.[A-Za-z0-9_-]{0,20}",
        ) {
            let header = JwsHeader { alg, typ, kid, kind };
            let json = serde_json::to_vec(&header).expect("serialises");
            let token = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(json));
            prop_assert_eq!(decode_unverified_header(&token), Ok(header));
        }

        /// Splitting never accepts anything but exactly three segments.
        #[test]
        fn only_three_segments_are_a_jws(token in "[a-z.]{0,12}") {
            let dots = token.matches('.').count();
            if dots != 2 {
                prop_assert_eq!(decode_unverified_header(&token), Err(JwsError::Malformed));
            }
        }
    }
}
