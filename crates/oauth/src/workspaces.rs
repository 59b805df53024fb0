//! Che workspaces: who may do what on one, and machine tokens (one per user
//! per workspace, created when the workspace starts or when another
//! permitted user first asks, dead once it stops). The owner may do
//! everything; invited members may read, start, stop and get their machine
//! token; a machine token acts as its user but only on its own workspace.
//! Only a machine token's id is stored; the JWT is re-signed on demand by
//! `Minter::machine_token` (RS512 PKCS#1 v1.5 is deterministic, so it is
//! the same string every time).

use crate::keyring::KeyCache;
use crate::{Failure, Minter};
use std::sync::Arc;
use tessera_core::time::now_ms;
use tessera_core::{MachineTokenRecord, OAuthError, Realm, User, Workspace, WorkspaceStatus};
use tessera_keys::VerifyingKey;
use tessera_store::{StoreError, UserStore, WorkspaceStore};

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Workspaces {
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) workspace_db: Arc<dyn WorkspaceStore>,
    pub(crate) user_db: Arc<dyn UserStore>,
    pub(crate) minter: Minter,
}

/// What a caller may do on a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Owner,
    Member,
}

impl Workspaces {
    /// What `user_id` may do on `ws`; `None` means "not found" for them. A
    /// caller holding a machine token (`machine_of` its workspace) reaches
    /// that workspace only.
    pub async fn access(
        &self,
        user_id: &str,
        machine_of: Option<&str>,
        ws: &Workspace,
    ) -> Result<Option<Access>> {
        if machine_of.is_some_and(|id| id != ws.id) {
            return Ok(None);
        }
        if ws.owner_id == user_id {
            return Ok(Some(Access::Owner));
        }
        Ok(self
            .workspace_db
            .is_workspace_member(&ws.id, user_id)
            .await?
            .then_some(Access::Member))
    }

    /// A user of the realm by id.
    pub async fn user(&self, realm: &Realm, id: &str) -> Result<Option<User>> {
        self.user_db.user(&realm.id, id).await
    }

    /// A user of the realm by username (any case).
    pub async fn user_by_username(&self, realm: &Realm, username: &str) -> Result<Option<User>> {
        self.user_db
            .user_by_username(&realm.id, &username.to_lowercase())
            .await
    }

    /// The enabled user, or `None` (gone or disabled).
    pub async fn live_user(&self, realm: &Realm, id: &str) -> Result<Option<User>> {
        Ok(self.user(realm, id).await?.filter(|u| u.enabled))
    }

    pub async fn workspace(&self, realm: &Realm, id: &str) -> Result<Option<Workspace>> {
        self.workspace_db.workspace(&realm.id, id).await
    }

    pub async fn workspace_by_name(
        &self,
        realm: &Realm,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Workspace>> {
        self.workspace_db
            .workspace_by_name(&realm.id, namespace, name)
            .await
    }

    /// Workspaces the user owns or is a member of.
    pub async fn user_workspaces(&self, realm: &Realm, user: &User) -> Result<Vec<Workspace>> {
        self.workspace_db.user_workspaces(&realm.id, &user.id).await
    }

    /// Fails with `Conflict` when the namespace already has the name.
    pub async fn create(&self, ws: &Workspace) -> Result<()> {
        self.workspace_db.create_workspace(ws).await
    }

    /// Starts the workspace (if it is not running) and makes sure its owner
    /// has a machine token.
    /// `NotFound` if the workspace was deleted meanwhile.
    pub async fn start(
        &self,
        realm: &Realm,
        ws: &mut Workspace,
    ) -> std::result::Result<(), Failure> {
        if ws.status != WorkspaceStatus::Running {
            ws.status = WorkspaceStatus::Running;
            ws.updated_at = now_ms();
            self.workspace_db
                .set_workspace_status(&ws.id, ws.status, ws.updated_at)
                .await?;
        }
        if let Some(owner) = self.user(realm, &ws.owner_id).await? {
            self.machine_record(ws, &owner).await?;
        }
        Ok(())
    }

    /// Stops the workspace: its machine tokens stop working.
    pub async fn stop(&self, ws: &Workspace) -> Result<()> {
        self.workspace_db
            .set_workspace_status(&ws.id, WorkspaceStatus::Stopped, now_ms())
            .await
    }

    /// Deletes a stopped workspace; `NotFound` if it is gone or running (the
    /// store deletes only a stopped one, so a racing start cannot lose a
    /// running workspace).
    pub async fn delete(&self, realm: &Realm, ws: &Workspace) -> Result<()> {
        self.workspace_db.delete_workspace(&realm.id, &ws.id).await
    }

    /// Invites `member` (the owner is never a member of their own).
    pub async fn add_member(&self, ws: &Workspace, member: &User) -> Result<()> {
        if member.id == ws.owner_id {
            return Ok(());
        }
        self.workspace_db
            .add_workspace_member(&ws.id, &member.id)
            .await
    }

    /// The user's machine token for a running workspace, created if needed.
    pub async fn machine_token(
        &self,
        realm: &Realm,
        ws: &Workspace,
        user: &User,
    ) -> std::result::Result<String, OAuthError> {
        let record = self.machine_record(ws, user).await?;
        self.minter.machine_token(realm, ws, user, &record).await
    }

    /// The live record of the user's machine token, created if needed
    /// (what a token is re-signed from; signing waits until one is asked for).
    async fn machine_record(
        &self,
        ws: &Workspace,
        user: &User,
    ) -> std::result::Result<MachineTokenRecord, OAuthError> {
        let store_err = OAuthError::server_error;
        Ok(
            match self
                .workspace_db
                .live_machine_token(&ws.id, &user.id)
                .await
                .map_err(store_err)?
            {
                Some(r) => r,
                None => {
                    let fresh = MachineTokenRecord {
                        jti: uuid::Uuid::new_v4().to_string(),
                        workspace_id: ws.id.clone(),
                        user_id: user.id.clone(),
                        created_at: now_ms(),
                        revoked_at: None,
                    };
                    match self.workspace_db.insert_machine_token(&fresh).await {
                        Ok(()) => fresh,
                        // A concurrent request created it first: use that one.
                        Err(StoreError::Conflict(_)) => self
                            .workspace_db
                            .live_machine_token(&ws.id, &user.id)
                            .await
                            .map_err(store_err)?
                            .ok_or_else(|| OAuthError::server_error("machine token vanished"))?,
                        Err(e) => return Err(store_err(e)),
                    }
                }
            },
        )
    }

    /// Base64 X.509 SubjectPublicKeyInfo of the machine-token key, as agents
    /// receive it in `CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY`.
    pub async fn machine_public_key(
        &self,
        realm: &Realm,
    ) -> std::result::Result<String, OAuthError> {
        Ok(self.keys.machine_keys(realm).await?.public_key_b64.clone())
    }

    /// The machine-token key `kid` (reloading the cache if it is new).
    pub async fn machine_verifier(
        &self,
        realm: &Realm,
        kid: &str,
    ) -> std::result::Result<Option<VerifyingKey>, OAuthError> {
        self.keys.machine_verifier(realm, kid).await
    }

    /// Whether the machine token `jti`, signed for `user_id` on
    /// `workspace_id`, still works: not revoked, and its workspace running
    /// (Che's MachineLoginFilter).
    pub async fn machine_token_live(
        &self,
        realm: &Realm,
        jti: &str,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let Some(record) = self.workspace_db.machine_token(jti).await? else {
            return Ok(false);
        };
        if record.revoked_at.is_some()
            || record.workspace_id != workspace_id
            || record.user_id != user_id
        {
            return Ok(false);
        }
        Ok(self
            .workspace_db
            .workspace(&realm.id, workspace_id)
            .await?
            .is_some_and(|w| w.status == WorkspaceStatus::Running))
    }
}
