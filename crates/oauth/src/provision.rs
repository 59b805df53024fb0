//! Creating realms (with their first signing key) and the first-start
//! bootstrap: the `master` realm, its `admin` user and the `admin-cli`
//! client, as Keycloak sets them up.

use crate::TokenService;
use std::collections::BTreeMap;
use tessera_core::secret::random_token;
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, Realm, Secret, User};
use tessera_store::StoreError;

pub const MASTER_REALM: &str = "master";
pub const ADMIN_ROLE: &str = "admin";
pub const ADMIN_CLI: &str = "admin-cli";

/// What the first start did, for the operator.
#[derive(Debug, Default)]
pub struct Bootstrap {
    pub created_master: bool,
    /// Set only when the password was generated (print it once).
    pub generated_admin_password: Option<Secret<String>>,
    pub created_default_realm: Option<String>,
}

impl TokenService {
    /// Stores a realm and generates its first signing key.
    pub async fn create_realm(&self, realm: &Realm) -> Result<(), StoreError> {
        self.store.create_realm(realm).await?;
        self.keys
            .realm_keys(realm)
            .await
            .map_err(|e| StoreError::Unexpected(format!("generating the realm key: {e:?}")))?;
        Ok(())
    }

    /// First start: creates `master` (admin user + admin-cli) if missing, and
    /// the configured default realm if it is another one and missing.
    /// Safe to run on every start and on several nodes at once.
    pub async fn bootstrap(
        &self,
        admin_password: Option<String>,
        default_realm: &str,
    ) -> Result<Bootstrap, OAuthError> {
        let mut out = Bootstrap::default();
        let err = OAuthError::server_error;
        if self
            .store
            .realm_by_name(MASTER_REALM)
            .await
            .map_err(err)?
            .is_none()
        {
            let master = Realm::new(MASTER_REALM, now_ms());
            match self.create_realm(&master).await {
                Ok(()) => {}
                // Another node bootstrapped at the same moment.
                Err(StoreError::Conflict(_)) => return Ok(out),
                Err(e) => return Err(err(e)),
            }
            out.created_master = true;
            let password = match admin_password {
                Some(p) => Secret::new(p),
                None => {
                    let p = Secret::new(random_token(12));
                    out.generated_admin_password = Some(p.clone());
                    p
                }
            };
            let now = now_ms();
            let admin = User {
                id: uuid::Uuid::new_v4().to_string(),
                realm_id: master.id.clone(),
                username: "admin".into(),
                email: None,
                email_verified: false,
                first_name: None,
                last_name: None,
                enabled: true,
                password_hash: Some(self.passwords.hash(&password).await?),
                password_temporary: false,
                roles: vec![ADMIN_ROLE.into()],
                attributes: BTreeMap::new(),
                created_at: now,
            };
            self.store.create_user(&admin).await.map_err(err)?;
            self.store
                .create_client(&admin_cli(&master))
                .await
                .map_err(err)?;
        }
        if default_realm != MASTER_REALM
            && self
                .store
                .realm_by_name(default_realm)
                .await
                .map_err(err)?
                .is_none()
        {
            match self
                .create_realm(&Realm::new(default_realm, now_ms()))
                .await
            {
                Ok(()) => out.created_default_realm = Some(default_realm.to_string()),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(out)
    }
}

/// Keycloak's `admin-cli`: public, password grant only.
fn admin_cli(realm: &Realm) -> Client {
    Client {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        client_id: ADMIN_CLI.into(),
        name: Some("${client_admin-cli}".into()),
        enabled: true,
        public_client: true,
        secret_hash: None,
        secret_generation: 0,
        secret_generated: false,
        redirect_uris: vec![],
        web_origins: vec![],
        standard_flow_enabled: false,
        direct_access_grants_enabled: true,
        service_accounts_enabled: false,
        attributes: BTreeMap::new(),
        created_at: now_ms(),
    }
}
