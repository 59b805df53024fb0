//! Agent mode: a workspace agent verifies machine tokens with nothing but
//! its environment, as Che's agents do:
//! `CHE_MACHINE_AUTH_SIGNATURE__ALGORITHM` (`RSA`),
//! `CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY` (base64 X.509 SubjectPublicKeyInfo DER),
//! `CHE_WORKSPACE_ID` (a token's `wsid` must match) and
//! `CHE_MACHINE_TOKEN` (the agent's own token, for calls back to the master).
//! Agents accept machine tokens only: user access tokens are refused.

use crate::verifier::{verify_machine_signature, MachineTokens, Verifier, VerifyError};
use crate::{Subject, TokenKind};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::{Secret, SigningAlg};
use tessera_keys::{JwsHeader, VerifyingKey};

pub const ENV_ALGORITHM: &str = "CHE_MACHINE_AUTH_SIGNATURE__ALGORITHM";
pub const ENV_PUBLIC_KEY: &str = "CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY";
pub const ENV_WORKSPACE_ID: &str = "CHE_WORKSPACE_ID";
pub const ENV_MACHINE_TOKEN: &str = "CHE_MACHINE_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("{ENV_ALGORITHM} must be RSA (machine tokens are RS512), got {0:?}")]
    Algorithm(String),
    #[error("{ENV_PUBLIC_KEY} is not a base64 X.509 SubjectPublicKeyInfo RSA key")]
    PublicKey,
}

/// An agent's verification settings, read from the environment.
#[derive(Clone)]
pub struct AgentConfig {
    key: VerifyingKey,
    workspace_id: String,
    machine_token: Option<Secret<String>>,
}

impl AgentConfig {
    pub fn from_env() -> Result<Self, AgentError> {
        Self::from_vars(&std::env::vars().collect())
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, AgentError> {
        let get = |name: &'static str| {
            vars.get(name)
                .filter(|v| !v.is_empty())
                .ok_or(AgentError::Missing(name))
        };
        let alg = get(ENV_ALGORITHM)?;
        if alg != "RSA" {
            return Err(AgentError::Algorithm(alg.clone()));
        }
        let der = STANDARD
            .decode(get(ENV_PUBLIC_KEY)?.trim())
            .map_err(|_| AgentError::PublicKey)?;
        let key = VerifyingKey::from_spki(String::new(), SigningAlg::RS512, &der)
            .map_err(|_| AgentError::PublicKey)?;
        Ok(Self {
            key,
            workspace_id: get(ENV_WORKSPACE_ID)?.clone(),
            machine_token: vars
                .get(ENV_MACHINE_TOKEN)
                .filter(|v| !v.is_empty())
                .map(|t| Secret::new(t.clone())),
        })
    }

    pub fn workspace_id(&self) -> &str {
        &self.workspace_id
    }

    /// The agent's own machine token, for calls back to the master.
    pub fn machine_token(&self) -> Option<&Secret<String>> {
        self.machine_token.as_ref()
    }

    /// A verifier that accepts only this workspace's machine tokens.
    pub fn verifier(&self) -> Verifier {
        Verifier::machine_only(Arc::new(AgentMachineTokens(self.clone())))
    }
}

struct AgentMachineTokens(AgentConfig);

#[async_trait]
impl MachineTokens for AgentMachineTokens {
    async fn verify_machine(
        &self,
        token: &str,
        _header: &JwsHeader,
    ) -> Result<Subject, VerifyError> {
        let (subject, _) = verify_machine_signature(token, &self.0.key)?;
        match &subject.kind {
            TokenKind::Machine { workspace_id } if *workspace_id == self.0.workspace_id => {
                Ok(subject)
            }
            _ => Err(VerifyError::WrongKind("machine token of another workspace")),
        }
    }
}
