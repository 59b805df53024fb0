//! How Tessera protects its own Che-style APIs with `tessera-verify`: keys
//! come from the server's key cache (no HTTP round trip to itself), machine
//! tokens are checked against the store (Che's MachineLoginFilter), and the
//! provisioning hook makes sure the user and their session are still alive
//! (Che's EnvironmentInitializationFilter).

use async_trait::async_trait;
use std::sync::Arc;
use tessera_core::Realm;
use tessera_keys::{JwsHeader, VerifyingKey};
use tessera_oauth::Services;
use tessera_verify::{
    verify_machine_signature, KeySource, MachineTokens, Provision, Subject, TokenKind, Verifier,
    VerifyError,
};

/// The realm-less APIs act in the default realm.
#[derive(Clone)]
pub struct DefaultRealm {
    pub svc: Services,
    pub name: String,
}

impl DefaultRealm {
    pub async fn realm(&self) -> Result<Realm, VerifyError> {
        self.svc
            .realms
            .realm(&self.name)
            .await
            .map_err(|e| VerifyError::Internal(format!("{e:?}")))
    }
}

struct RealmKeys(DefaultRealm);

#[async_trait]
impl KeySource for RealmKeys {
    async fn key(&self, kid: Option<&str>) -> Result<Option<VerifyingKey>, VerifyError> {
        let Some(kid) = kid else { return Ok(None) };
        let realm = self.0.realm().await?;
        self.0
            .svc
            .verifier
            .key(&realm, kid)
            .await
            .map_err(|e| VerifyError::Internal(format!("{e:?}")))
    }
}

struct StoredMachineTokens(DefaultRealm);

#[async_trait]
impl MachineTokens for StoredMachineTokens {
    async fn verify_machine(
        &self,
        token: &str,
        header: &JwsHeader,
    ) -> Result<Subject, VerifyError> {
        let internal = |e: String| VerifyError::Internal(e);
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let realm = self.0.realm().await?;
        let workspaces = &self.0.svc.workspaces;
        let key = workspaces
            .machine_verifier(&realm, kid)
            .await
            .map_err(|e| internal(format!("{e:?}")))?
            .ok_or(VerifyError::UnknownKey)?;
        let (subject, claims) = verify_machine_signature(token, &key)?;
        let TokenKind::Machine { workspace_id } = &subject.kind else {
            return Err(VerifyError::Malformed);
        };
        let jti = claims["jti"].as_str().ok_or(VerifyError::Malformed)?;
        let live = workspaces
            .machine_token_live(&realm, jti, workspace_id, &subject.id)
            .await
            .map_err(|e| internal(e.to_string()))?;
        if !live {
            return Err(VerifyError::Revoked);
        }
        Ok(subject)
    }
}

/// The user must still exist and be enabled, and a user token's session must
/// still be live, so logout and disabling take effect at once.
struct LiveUser(DefaultRealm);

#[async_trait]
impl Provision for LiveUser {
    async fn provision(&self, subject: &mut Subject) -> Result<(), VerifyError> {
        let realm = self.0.realm().await?;
        let user = self
            .0
            .svc
            .workspaces
            .live_user(&realm, &subject.id)
            .await
            .map_err(|e| VerifyError::Internal(e.to_string()))?
            .ok_or(VerifyError::Revoked)?;
        if let TokenKind::User { session } = &subject.kind {
            let sid = session
                .as_deref()
                .ok_or(VerifyError::WrongKind("a user's access token is required"))?;
            let live = self
                .0
                .svc
                .verifier
                .live_session(&realm, sid)
                .await
                .map_err(|e| VerifyError::Internal(e.description))?
                .is_some_and(|s| s.user_id == user.id);
            if !live {
                return Err(VerifyError::Revoked);
            }
        }
        subject.username = Some(user.username);
        Ok(())
    }
}

/// A verifier for access tokens of the default realm, keys from the cache.
pub fn verifier_for(realm: &DefaultRealm) -> Verifier {
    let issuer = realm.svc.realms.issuer(&realm.name);
    Verifier::new(issuer, Arc::new(RealmKeys(realm.clone()))).leeway(5)
}

/// The verifier for Tessera's Che APIs: access tokens of the default realm
/// and machine tokens.
pub fn verifier(realm: &DefaultRealm) -> Arc<Verifier> {
    Arc::new(verifier_for(realm).machine_tokens(Arc::new(StoredMachineTokens(realm.clone()))))
}

pub fn provision(realm: &DefaultRealm) -> Arc<dyn Provision> {
    Arc::new(LiveUser(realm.clone()))
}
