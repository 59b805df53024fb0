//! Verifying one token: user access tokens against the issuer's keys, Che
//! machine tokens through a [`MachineTokens`] implementation.

use crate::keysource::KeySource;
use crate::subject::{Subject, TokenKind};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tessera_core::Secret;
use tessera_keys::{decode_unverified_header, verify_compact, JwsHeader};

/// Algorithms accepted at all; the key's own algorithm must also match.
const ALLOWED_ALGS: &[&str] = &["RS256", "RS512", "ES256", "EdDSA"];
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Header value of Che machine tokens.
pub const MACHINE_TOKEN_KIND: &str = "machine_token";

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("no token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    /// The token is of a kind this resource does not accept.
    #[error("{0}")]
    WrongKind(&'static str),
    #[error("token revoked")]
    Revoked,
    /// Valid token, but the caller lacks the right (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Valid token without the role or scope a route requires (403, and the
    /// challenge names the scope).
    #[error("requires {0}")]
    InsufficientScope(String),
    /// The issuer's keys could not be fetched (503).
    #[error("verification keys unavailable: {0}")]
    KeysUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Verifies Che machine tokens (header `kind: machine_token`).
#[async_trait]
pub trait MachineTokens: Send + Sync {
    async fn verify_machine(&self, token: &str, header: &JwsHeader)
        -> Result<Subject, VerifyError>;
}

/// Verifies bearer tokens for one resource server.
pub struct Verifier {
    issuer: Option<String>,
    audience: Option<String>,
    user_keys: Option<Arc<dyn KeySource>>,
    machine: Option<Arc<dyn MachineTokens>>,
    consent: bool,
    leeway_secs: i64,
}

impl Verifier {
    /// Accepts access tokens from `issuer` signed by `keys`.
    pub fn new(issuer: impl Into<String>, keys: Arc<dyn KeySource>) -> Self {
        Self {
            issuer: Some(issuer.into()),
            audience: None,
            user_keys: Some(keys),
            machine: None,
            consent: false,
            leeway_secs: 30,
        }
    }

    /// Accepts machine tokens only (agent mode).
    pub fn machine_only(machine: Arc<dyn MachineTokens>) -> Self {
        Self {
            issuer: None,
            audience: None,
            user_keys: None,
            machine: Some(machine),
            consent: false,
            leeway_secs: 30,
        }
    }

    /// Requires `aud` to be (or contain) this value.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audience = Some(aud.into());
        self
    }

    /// Also accepts machine tokens (Che master's MachineLoginFilter).
    pub fn machine_tokens(mut self, m: Arc<dyn MachineTokens>) -> Self {
        self.machine = Some(m);
        self
    }

    /// Also accepts consent-login access tokens from the same issuer (a
    /// Verida-style storage node). They are never taken for user tokens.
    pub fn consent_tokens(mut self) -> Self {
        self.consent = true;
        self
    }

    /// Clock skew tolerated on `exp`/`nbf`/`iat`, in seconds (default 30).
    pub fn leeway(mut self, secs: i64) -> Self {
        self.leeway_secs = secs;
        self
    }

    pub async fn verify(&self, token: &str) -> Result<Subject, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed);
        }
        let header = decode_unverified_header(token).map_err(|_| VerifyError::Malformed)?;
        if !ALLOWED_ALGS.contains(&header.alg.as_str()) {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        if header.kind.as_deref() == Some(MACHINE_TOKEN_KIND) {
            let machine = self.machine.as_ref().ok_or(VerifyError::WrongKind(
                "machine tokens are not accepted here",
            ))?;
            return machine.verify_machine(token, &header).await;
        }
        if header.kind.is_some() {
            return Err(VerifyError::WrongKind("unknown token kind"));
        }
        let (Some(keys), Some(issuer)) = (&self.user_keys, &self.issuer) else {
            return Err(VerifyError::WrongKind("user tokens are not accepted here"));
        };
        let key = keys
            .key(header.kid.as_deref())
            .await?
            .ok_or(VerifyError::UnknownKey)?;
        let claims = verify_compact(token, &key).map_err(|e| match e {
            tessera_keys::JwsError::Malformed => VerifyError::Malformed,
            _ => VerifyError::BadSignature,
        })?;
        let consent = claims["typ"] == tessera_core::claims::TYP_CONSENT;
        if consent && !self.consent {
            return Err(VerifyError::WrongKind(
                "consent tokens are not accepted here",
            ));
        }
        if !consent && claims["typ"] != "Bearer" {
            return Err(VerifyError::WrongKind("not an access token"));
        }
        if claims["iss"].as_str() != Some(issuer.as_str()) {
            return Err(VerifyError::WrongIssuer);
        }
        if let Some(aud) = &self.audience {
            let ok = match &claims["aud"] {
                Value::String(s) => s == aud,
                Value::Array(a) => a.iter().any(|v| v.as_str() == Some(aud.as_str())),
                _ => false,
            };
            if !ok {
                return Err(VerifyError::WrongAudience);
            }
        }
        check_times(&claims, self.leeway_secs)?;
        if claims["sub"].as_str().is_none_or(str::is_empty) {
            return Err(VerifyError::Malformed);
        }
        if consent {
            return consent_subject(&claims, token);
        }
        Ok(user_subject(&claims, token))
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn check_times(claims: &Value, leeway: i64) -> Result<(), VerifyError> {
    let now = now_secs();
    let exp = claims["exp"].as_i64().ok_or(VerifyError::Malformed)?;
    if exp + leeway <= now {
        return Err(VerifyError::Expired);
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf - leeway > now) {
        return Err(VerifyError::NotYetValid);
    }
    if claims["iat"].as_i64().is_some_and(|iat| iat - leeway > now) {
        return Err(VerifyError::NotYetValid);
    }
    Ok(())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `aud`, a string or an array of strings (RFC 7519 §4.1.3).
fn audience(aud: &Value) -> Vec<String> {
    match aud {
        Value::String(s) => vec![s.clone()],
        other => strings(other),
    }
}

fn user_subject(claims: &Value, token: &str) -> Subject {
    let text = |k: &str| claims[k].as_str().map(str::to_string);
    Subject {
        id: text("sub").unwrap_or_default(),
        username: text("preferred_username"),
        email: text("email"),
        roles: strings(&claims["realm_access"]["roles"]),
        scope: claims["scope"]
            .as_str()
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        client_id: text("azp"),
        audience: audience(&claims["aud"]),
        kind: TokenKind::User {
            session: text("sid"),
        },
        token: Secret::new(token.to_string()),
    }
}

fn consent_subject(claims: &Value, token: &str) -> Result<Subject, VerifyError> {
    let text = |k: &str| claims[k].as_str().map(str::to_string);
    let (Some(session), Some(did), Some(context_name)) =
        (text("sid"), text("did"), text("contextName"))
    else {
        return Err(VerifyError::Malformed);
    };
    if claims["type"] != "access" {
        return Err(VerifyError::WrongKind("not an access token"));
    }
    Ok(Subject {
        id: text("sub").unwrap_or_default(),
        username: text("sub"),
        email: None,
        roles: vec![],
        scope: vec![],
        client_id: text("azp"),
        audience: audience(&claims["aud"]),
        kind: TokenKind::Consent {
            session,
            did,
            context_name,
        },
        token: Secret::new(token.to_string()),
    })
}

/// Reads a machine token's claims into a subject (after the caller verified it).
pub(crate) fn machine_subject(claims: &Value, token: &str) -> Result<Subject, VerifyError> {
    let text = |k: &str| claims[k].as_str().map(str::to_string);
    let (Some(uid), Some(wsid)) = (text("uid"), text("wsid")) else {
        return Err(VerifyError::Malformed);
    };
    Ok(Subject {
        id: uid,
        username: text("uname"),
        email: None,
        roles: vec![],
        scope: vec![],
        client_id: None,
        audience: Vec::new(),
        kind: TokenKind::Machine { workspace_id: wsid },
        token: Secret::new(token.to_string()),
    })
}

/// Verifies a machine token's signature with `key` and returns its claims.
pub fn verify_machine_signature(
    token: &str,
    key: &tessera_keys::VerifyingKey,
) -> Result<(Subject, Value), VerifyError> {
    if key.alg() != tessera_core::SigningAlg::RS512 {
        return Err(VerifyError::AlgorithmNotAllowed);
    }
    let claims = verify_compact(token, key).map_err(|e| match e {
        tessera_keys::JwsError::Malformed => VerifyError::Malformed,
        _ => VerifyError::BadSignature,
    })?;
    Ok((machine_subject(&claims, token)?, claims))
}
