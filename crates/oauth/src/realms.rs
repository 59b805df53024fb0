//! Looking realms up by name, as every realm-scoped request does first.

use crate::OAuthConfig;
use std::sync::Arc;
use tessera_core::{OAuthError, Realm};
use tessera_store::RealmStore;

#[derive(Clone)]
pub struct Realms {
    pub(crate) realm_db: Arc<dyn RealmStore>,
    pub(crate) config: Arc<OAuthConfig>,
}

impl Realms {
    /// The `iss` of tokens from `realm`.
    pub fn issuer(&self, realm: &str) -> String {
        self.config.issuer(realm)
    }

    /// The enabled realm whose tokens carry the issuer `iss` (404 for an
    /// unknown or disabled realm, or another issuer). `iss` is untrusted
    /// here: it only says whose keys to verify a token with.
    pub async fn realm_by_issuer(&self, iss: &str) -> Result<Realm, OAuthError> {
        match self.config.realm_in_issuer(iss) {
            Some(name) => self.realm(name).await,
            None => Err(OAuthError::not_found("Realm does not exist")),
        }
    }

    /// Looks a realm up by name; unknown or disabled realms are 404.
    pub async fn realm(&self, name: &str) -> Result<Realm, OAuthError> {
        // PostgreSQL refuses NUL in text: such a name is simply not a realm.
        if name.len() > 255 || name.chars().any(char::is_control) {
            return Err(OAuthError::not_found("Realm does not exist"));
        }
        match self.realm_db.realm_by_name(name).await {
            Ok(Some(r)) if r.enabled => Ok(r),
            Ok(_) => Err(OAuthError::not_found("Realm does not exist")),
            Err(e) => Err(OAuthError::server_error(e)),
        }
    }
}
