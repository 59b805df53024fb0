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
