//! Workspaces, their members, and the machine tokens issued for them.

pub const INSERT: &str = "INSERT INTO workspaces (id, realm_id, owner_id, namespace, name, \
    status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub const BY_ID: &str = "SELECT * FROM workspaces WHERE realm_id = $1 AND id = $2";
pub const BY_NAME: &str =
    "SELECT * FROM workspaces WHERE realm_id = $1 AND namespace = $2 AND name = $3";
/// The workspaces a user owns or is a member of.
pub const FOR_USER: &str = "SELECT * FROM workspaces WHERE realm_id = $1 AND (owner_id = $2 \
    OR id IN (SELECT workspace_id FROM workspace_members WHERE user_id = $2)) \
    ORDER BY namespace, name";
pub const SET_STATUS: &str = "UPDATE workspaces SET status = $2, updated_at = $3 WHERE id = $1";
/// Only a stopped workspace can be deleted.
pub const DELETE_STOPPED: &str =
    "DELETE FROM workspaces WHERE realm_id = $1 AND id = $2 AND status = 'STOPPED'";

/// Adding a member twice is a no-op.
pub const ADD_MEMBER: &str =
    "INSERT INTO workspace_members (workspace_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
pub const COUNT_MEMBER: &str =
    "SELECT COUNT(*) AS n FROM workspace_members WHERE workspace_id = $1 AND user_id = $2";

pub const INSERT_MACHINE_TOKEN: &str = "INSERT INTO machine_tokens \
    (jti, workspace_id, user_id, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)";
/// Revokes every live token of a workspace at `$2`.
pub const REVOKE_MACHINE_TOKENS: &str = "UPDATE machine_tokens SET revoked_at = $2 \
    WHERE workspace_id = $1 AND revoked_at IS NULL";
pub const LIVE_MACHINE_TOKEN: &str = "SELECT * FROM machine_tokens \
    WHERE workspace_id = $1 AND user_id = $2 AND revoked_at IS NULL";
pub const MACHINE_TOKEN_BY_JTI: &str = "SELECT * FROM machine_tokens WHERE jti = $1";

/// `WorkspaceStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_workspace_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::workspaces;

            fn workspace(row: &Row) -> Result<Workspace> {
                let status: String = col(row, "status")?;
                Ok(Workspace {
                    id: col(row, "id")?,
                    realm_id: col(row, "realm_id")?,
                    owner_id: col(row, "owner_id")?,
                    namespace: col(row, "namespace")?,
                    name: col(row, "name")?,
                    status: WorkspaceStatus::parse(&status).ok_or_else(|| {
                        StoreError::Unexpected(format!("workspace status {status}"))
                    })?,
                    created_at: col(row, "created_at")?,
                    updated_at: col(row, "updated_at")?,
                })
            }
            fn machine(row: &Row) -> Result<MachineTokenRecord> {
                Ok(MachineTokenRecord {
                    jti: col(row, "jti")?,
                    workspace_id: col(row, "workspace_id")?,
                    user_id: col(row, "user_id")?,
                    created_at: col(row, "created_at")?,
                    revoked_at: col(row, "revoked_at")?,
                })
            }

            #[$crate::__async_trait]
            impl $crate::WorkspaceStore for $ty {
                async fn create_workspace(&self, w: &Workspace) -> Result<()> {
                    let w = w.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(workspaces::INSERT)
                                .bind(&w.id)
                                .bind(&w.realm_id)
                                .bind(&w.owner_id)
                                .bind(&w.namespace)
                                .bind(&w.name)
                                .bind(w.status.as_str())
                                .bind(w.created_at)
                                .bind(w.updated_at);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn workspace(&self, realm_id: &str, id: &str) -> Result<Option<Workspace>> {
                    let q = ::sqlx::query(workspaces::BY_ID).bind(realm_id).bind(id);
                    optional(q, self.reader(), workspace).await
                }
                async fn workspace_by_name(
                    &self,
                    realm_id: &str,
                    namespace: &str,
                    name: &str,
                ) -> Result<Option<Workspace>> {
                    let q = ::sqlx::query(workspaces::BY_NAME)
                        .bind(realm_id)
                        .bind(namespace)
                        .bind(name);
                    optional(q, self.reader(), workspace).await
                }
                async fn user_workspaces(
                    &self,
                    realm_id: &str,
                    user_id: &str,
                ) -> Result<Vec<Workspace>> {
                    let q = ::sqlx::query(workspaces::FOR_USER)
                        .bind(realm_id)
                        .bind(user_id);
                    all(q, self.reader(), workspace).await
                }
                async fn set_workspace_status(
                    &self,
                    id: &str,
                    status: WorkspaceStatus,
                    now: i64,
                ) -> Result<()> {
                    let id = id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            let set = ::sqlx::query(workspaces::SET_STATUS)
                                .bind(&id)
                                .bind(status.as_str())
                                .bind(now);
                            one_row(affected(set, &mut *tx).await?)?;
                            // Both transitions revoke live tokens: stopping ends them, and
                            // starting clears any a request raced in while it stopped,
                            // so a new run always gets new tokens.
                            let revoke = ::sqlx::query(workspaces::REVOKE_MACHINE_TOKENS)
                                .bind(&id)
                                .bind(now);
                            execute(revoke, &mut *tx).await?;
                            tx.commit().await.map_err(err)
                        })
                    })
                    .await
                }
                async fn delete_workspace(&self, realm_id: &str, id: &str) -> Result<()> {
                    let realm_id = realm_id.to_owned();
                    let id = id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(workspaces::DELETE_STOPPED)
                                .bind(&realm_id)
                                .bind(&id);
                            one_row(affected(q, &mut *conn).await?)
                        })
                    })
                    .await
                }
                async fn add_workspace_member(
                    &self,
                    workspace_id: &str,
                    user_id: &str,
                ) -> Result<()> {
                    let workspace_id = workspace_id.to_owned();
                    let user_id = user_id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(workspaces::ADD_MEMBER)
                                .bind(&workspace_id)
                                .bind(&user_id);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn is_workspace_member(
                    &self,
                    workspace_id: &str,
                    user_id: &str,
                ) -> Result<bool> {
                    let q = ::sqlx::query(workspaces::COUNT_MEMBER)
                        .bind(workspace_id)
                        .bind(user_id);
                    let n: i64 = one(q, self.reader(), |r| col(r, "n")).await?;
                    Ok(n > 0)
                }
                async fn insert_machine_token(&self, t: &MachineTokenRecord) -> Result<()> {
                    let t = t.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(workspaces::INSERT_MACHINE_TOKEN)
                                .bind(&t.jti)
                                .bind(&t.workspace_id)
                                .bind(&t.user_id)
                                .bind(t.created_at)
                                .bind(t.revoked_at);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn live_machine_token(
                    &self,
                    workspace_id: &str,
                    user_id: &str,
                ) -> Result<Option<MachineTokenRecord>> {
                    let q = ::sqlx::query(workspaces::LIVE_MACHINE_TOKEN)
                        .bind(workspace_id)
                        .bind(user_id);
                    optional(q, self.reader(), machine).await
                }
                async fn machine_token(&self, jti: &str) -> Result<Option<MachineTokenRecord>> {
                    let q = ::sqlx::query(workspaces::MACHINE_TOKEN_BY_JTI).bind(jti);
                    optional(q, self.reader(), machine).await
                }
            }
        };
    };
}
