//! Creating realms (with their first signing key) and the first-start
//! bootstrap: the `master` realm, its `admin` user and the `admin-cli`
//! client, as Keycloak sets them up.

use crate::Administration;
use std::collections::BTreeMap;
use tessera_core::secret::random_token;
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, Realm, Secret, User};
use tessera_store::StoreError;

pub const MASTER_REALM: &str = "master";
pub const ADMIN_ROLE: &str = "admin";
pub const ADMIN_CLI: &str = "admin-cli";
/// The realm applications and self-service flows use unless configured
/// otherwise: never the admin realm.
pub const DEFAULT_REALM: &str = "tessera";
/// The public client created with the default realm (IDEs, CLIs, Che's
/// dashboard): device, password and browser (loopback) sign-in.
pub const DEFAULT_CLIENT: &str = "tessera-cli";

/// What the first start did, for the operator.
#[derive(Debug, Default)]
pub struct Bootstrap {
    pub created_master: bool,
    /// Set only when the password was generated (print it once).
    pub generated_admin_password: Option<Secret<String>>,
    pub created_default_realm: Option<String>,
}

impl Administration {
    /// Stores a realm and generates its first signing key. If the key cannot
    /// be made, the realm is removed again, so a failed create changes nothing.
    pub async fn create_realm(&self, realm: &Realm) -> Result<(), StoreError> {
        self.realm_db.create_realm(realm).await?;
        if let Err(e) = self.keys.realm_keys(realm).await {
            let _ = self.realm_db.delete_realm(&realm.id).await;
            return Err(StoreError::Unexpected(format!(
                "generating the realm key: {e:?}"
            )));
        }
        Ok(())
    }

    /// First start: creates `master` with its `admin` user and `admin-cli`,
    /// and the configured default realm if it is another one. Safe on every
    /// start and on several nodes at once. A first start that was cut short
    /// (a master realm without any user) is completed on the next start.
    pub async fn bootstrap(
        &self,
        admin_password: Option<String>,
        default_realm: &str,
    ) -> Result<Bootstrap, OAuthError> {
        let mut out = Bootstrap::default();
        let err = OAuthError::server_error;
        let master = match self
            .realm_db
            .realm_by_name(MASTER_REALM)
            .await
            .map_err(err)?
        {
            Some(m) => m,
            None => {
                let m = Realm::new(MASTER_REALM, now_ms());
                match self.create_realm(&m).await {
                    Ok(()) => out.created_master = true,
                    // Another node bootstrapped at the same moment.
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(err(e)),
                }
                self.realm_db
                    .realm_by_name(MASTER_REALM)
                    .await
                    .map_err(err)?
                    .ok_or_else(|| {
                        OAuthError::server_error("master realm vanished during bootstrap")
                    })?
            }
        };
        if self.user_db.count_users(&master.id).await.map_err(err)? == 0 {
            let (password, generated) = match admin_password {
                Some(p) => (Secret::new(p), false),
                None => (Secret::new(random_token(12)), true),
            };
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
                created_at: now_ms(),
            };
            match self.user_db.create_user(&admin).await {
                Ok(()) if generated => out.generated_admin_password = Some(password),
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(err(e)),
            }
            if self
                .client_db
                .client_by_client_id(&master.id, ADMIN_CLI)
                .await
                .map_err(err)?
                .is_none()
            {
                match self.client_db.create_client(&admin_cli(&master)).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(err(e)),
                }
            }
        }
        if default_realm != MASTER_REALM
            && self
                .realm_db
                .realm_by_name(default_realm)
                .await
                .map_err(err)?
                .is_none()
        {
            let realm = Realm::new(default_realm, now_ms());
            match self.create_realm(&realm).await {
                Ok(()) => {
                    match self.client_db.create_client(&default_client(&realm)).await {
                        Ok(()) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(err(e)),
                    }
                    out.created_default_realm = Some(default_realm.to_string())
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(out)
    }
}

/// The default realm's public client for developer tools: device code,
/// password, and browser sign-in with a loopback redirect (any port, RFC
/// 8252). Provider sign-up stays off until an administrator enables it.
fn default_client(realm: &Realm) -> Client {
    Client {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        client_id: DEFAULT_CLIENT.into(),
        name: Some("Developer tools".into()),
        enabled: true,
        public_client: true,
        secret_hash: None,
        secret_generation: 0,
        secret_generated: false,
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        web_origins: vec![],
        standard_flow_enabled: true,
        direct_access_grants_enabled: true,
        service_accounts_enabled: false,
        attributes: BTreeMap::from([(
            "oauth2.device.authorization.grant.enabled".to_string(),
            "true".to_string(),
        )]),
        created_at: now_ms(),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A service on a fresh SQLite file, with cheap password hashes.
    pub(crate) async fn service() -> (crate::Services, tempfile::TempDir) {
        use crate::config::PasswordConfig;
        use crate::OAuthConfig;
        let dir = tempfile::tempdir().expect("tmp");
        let store = tessera_store_sqlite::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("db");
        let mut cfg = OAuthConfig::new("http://t");
        cfg.password = PasswordConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        };
        (
            crate::Services::new(
                std::sync::Arc::new(store),
                tessera_keys::MasterKey::generate(),
                cfg,
            ),
            dir,
        )
    }

    #[tokio::test]
    async fn bootstrap_runs_once_and_completes_an_interrupted_start() {
        let (svc, _dir) = service().await;
        let svc = &svc.admin;
        let first = svc.bootstrap(None, "che").await.expect("bootstrap");
        assert!(first.created_master);
        assert!(first.generated_admin_password.is_some());
        assert_eq!(first.created_default_realm.as_deref(), Some("che"));
        let again = svc.bootstrap(None, "che").await.expect("again");
        assert!(!again.created_master && again.generated_admin_password.is_none());

        // Simulate a first start cut short after the realm was created.
        let (svc, _dir) = service().await;
        let svc = &svc.admin;
        svc.create_realm(&Realm::new(MASTER_REALM, now_ms()))
            .await
            .expect("realm only");
        let repaired = svc
            .bootstrap(Some("pw".into()), MASTER_REALM)
            .await
            .expect("repair");
        assert!(!repaired.created_master);
        assert!(
            repaired.generated_admin_password.is_none(),
            "the given password is not printed"
        );
        let master = svc.realm(MASTER_REALM).await.expect("db").expect("master");
        let admin = svc
            .user_by_username(&master, "admin")
            .await
            .expect("db")
            .expect("admin created");
        assert_eq!(admin.roles, vec![ADMIN_ROLE.to_string()]);
        assert!(svc
            .client_by_client_id(&master, ADMIN_CLI)
            .await
            .expect("db")
            .is_some());
    }
}
