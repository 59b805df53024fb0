//! App sessions: one per sign-in of a client, each with its refresh tokens.
//! A session is live while `revoked_at IS NULL AND expires_at > now`.

pub const INSERT: &str = "INSERT INTO sessions (id, realm_id, user_id, client_id, device_id, \
    ip, user_agent, scope, auth_time, created_at, last_used_at, expires_at, revoked_at, \
    context_name, origin, sso_session_id) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
pub const BY_ID: &str = "SELECT * FROM sessions WHERE id = $1";
/// A user's live sessions at `$3`, newest first.
pub const LIVE_FOR_USER: &str = "SELECT * FROM sessions \
    WHERE realm_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
    ORDER BY created_at DESC, id";
/// Revokes one session unless it already is, returning its realm and user.
pub const REVOKE: &str = "UPDATE sessions SET revoked_at = $2 \
    WHERE id = $1 AND revoked_at IS NULL RETURNING realm_id, user_id";
pub const REVOKE_FOR_USER: &str = "UPDATE sessions SET revoked_at = $3 \
    WHERE realm_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 RETURNING id";
pub const REVOKE_FOR_CLIENT: &str = "UPDATE sessions SET revoked_at = $3 \
    WHERE realm_id = $1 AND client_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
    RETURNING user_id, id";
/// The sessions of one device in one consent context (`ConsentStore`).
pub const REVOKE_FOR_DEVICE: &str = "UPDATE sessions SET revoked_at = $5 \
    WHERE realm_id = $1 AND user_id = $2 AND context_name = $3 AND device_id = $4 \
    AND revoked_at IS NULL AND expires_at > $5 RETURNING id";
/// The app sessions of one SSO session (`BrowserStore`).
pub const REVOKE_FOR_SSO: &str = "UPDATE sessions SET revoked_at = $2 \
    WHERE sso_session_id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING id";
/// Marks a live session used at `$2`; a NULL address or agent keeps the old.
pub const TOUCH: &str = "UPDATE sessions SET last_used_at = $2, ip = coalesce($3, ip), \
    user_agent = coalesce($4, user_agent) \
    WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING *";
/// `TOUCH` for a refresh rotation, which also extends the session to the new
/// token's expiry `$5` (never shortens it).
pub const TOUCH_AND_EXTEND: &str = "UPDATE sessions SET last_used_at = $2, \
    ip = coalesce($3, ip), user_agent = coalesce($4, user_agent), \
    expires_at = CASE WHEN $5 > expires_at THEN $5 ELSE expires_at END \
    WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING *";
/// A batch of sessions expired by `$1` or revoked a day before it: a day of
/// revoked rows keeps reuse of their tokens recognisable.
pub const PURGE: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
    WHERE expires_at <= $1 UNION SELECT id FROM sessions WHERE revoked_at <= $1 - 86400000 \
    LIMIT $2)";

/// `SessionStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_session_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::{browser, sessions};

            #[$crate::__async_trait]
            impl $crate::SessionStore for $ty {
                async fn create_session(
                    &self,
                    s: &Session,
                    first: &RefreshTokenRecord,
                ) -> Result<()> {
                    let s = s.clone();
                    let first = first.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            insert_session(&mut *tx, &s, &first).await?;
                            tx.commit().await.map_err(err)
                        })
                    })
                    .await
                }
                async fn session(&self, id: &str) -> Result<Option<Session>> {
                    let q = ::sqlx::query(sessions::BY_ID).bind(id);
                    optional(q, self.reader(), session).await
                }
                async fn user_sessions(
                    &self,
                    realm_id: &str,
                    user_id: &str,
                    now: i64,
                ) -> Result<Vec<Session>> {
                    let q = ::sqlx::query(sessions::LIVE_FOR_USER)
                        .bind(realm_id)
                        .bind(user_id)
                        .bind(now);
                    all(q, self.reader(), session).await
                }
                async fn revoke_session(&self, id: &str, now: i64) -> Result<Option<SessionOwner>> {
                    let id = id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(sessions::REVOKE).bind(&id).bind(now);
                            optional(q, &mut *conn, session_owner).await
                        })
                    })
                    .await
                }
                async fn revoke_user_sessions(
                    &self,
                    realm_id: &str,
                    user_id: &str,
                    now: i64,
                ) -> Result<Vec<String>> {
                    let realm_id = realm_id.to_owned();
                    let user_id = user_id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            let sso = ::sqlx::query(browser::REVOKE_USER_SSO_SESSIONS)
                                .bind(&realm_id)
                                .bind(&user_id)
                                .bind(now);
                            execute(sso, &mut *tx).await?;
                            let apps = ::sqlx::query(sessions::REVOKE_FOR_USER)
                                .bind(&realm_id)
                                .bind(&user_id)
                                .bind(now);
                            let ids = all(apps, &mut *tx, |r| col(r, "id")).await?;
                            // A device the user approved but that has not collected
                            // its tokens yet must not get them now.
                            let devices = ::sqlx::query(browser::DENY_USER_DEVICE_CODES)
                                .bind(&realm_id)
                                .bind(&user_id);
                            execute(devices, &mut *tx).await?;
                            tx.commit().await.map_err(err)?;
                            Ok(ids)
                        })
                    })
                    .await
                }
                async fn revoke_client_sessions(
                    &self,
                    realm_id: &str,
                    client_id: &str,
                    now: i64,
                ) -> Result<Vec<(String, String)>> {
                    let realm_id = realm_id.to_owned();
                    let client_id = client_id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            let apps = ::sqlx::query(sessions::REVOKE_FOR_CLIENT)
                                .bind(&realm_id)
                                .bind(&client_id)
                                .bind(now);
                            let ended =
                                all(apps, &mut *tx, |r| Ok((col(r, "user_id")?, col(r, "id")?)))
                                    .await?;
                            let devices = ::sqlx::query(browser::DENY_CLIENT_DEVICE_CODES)
                                .bind(&realm_id)
                                .bind(&client_id);
                            execute(devices, &mut *tx).await?;
                            tx.commit().await.map_err(err)?;
                            Ok(ended)
                        })
                    })
                    .await
                }
                async fn touch_session(
                    &self,
                    id: &str,
                    now: i64,
                    meta: &ClientMeta,
                ) -> Result<Option<Session>> {
                    let id = id.to_owned();
                    let meta = meta.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(sessions::TOUCH)
                                .bind(&id)
                                .bind(now)
                                .bind(&meta.ip)
                                .bind(&meta.user_agent);
                            optional(q, &mut *conn, session).await
                        })
                    })
                    .await
                }
            }
        };
    };
}
