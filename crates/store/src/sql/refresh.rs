//! Refresh tokens, stored by hash; each belongs to one app session.

pub const INSERT: &str = "INSERT INTO refresh_tokens \
    (hash, session_id, created_at, expires_at, rotated_at) VALUES ($1, $2, $3, $4, $5)";
pub const BY_HASH: &str = "SELECT * FROM refresh_tokens WHERE hash = $1";
/// A token (its columns renamed `token_*`) with all of its session's.
pub const WITH_SESSION: &str = "SELECT r.hash AS token_hash, \
    r.created_at AS token_created_at, r.expires_at AS token_expires_at, \
    r.rotated_at AS token_rotated_at, s.* \
    FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.hash = $1";
/// Spends a live token at `$2`, returning its session.
pub const SPEND: &str = "UPDATE refresh_tokens SET rotated_at = $2 \
    WHERE hash = $1 AND rotated_at IS NULL AND expires_at > $2 RETURNING session_id";
/// A batch of tokens expired by `$1`.
pub const PURGE: &str = "DELETE FROM refresh_tokens WHERE hash IN \
    (SELECT hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)";

/// `RefreshTokenStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_refresh_token_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::{refresh, sessions};

            fn refresh_record(row: &Row) -> Result<RefreshTokenRecord> {
                Ok(RefreshTokenRecord {
                    hash: TokenHash::from_stored(col(row, "hash")?),
                    session_id: col(row, "session_id")?,
                    created_at: col(row, "created_at")?,
                    expires_at: col(row, "expires_at")?,
                    rotated_at: col(row, "rotated_at")?,
                })
            }

            #[$crate::__async_trait]
            impl $crate::RefreshTokenStore for $ty {
                async fn refresh_token(
                    &self,
                    hash: &TokenHash,
                ) -> Result<Option<RefreshTokenRecord>> {
                    let q = ::sqlx::query(refresh::BY_HASH).bind(hash.as_str());
                    optional(q, self.reader(), refresh_record).await
                }
                async fn refresh_token_with_session(
                    &self,
                    hash: &TokenHash,
                ) -> Result<Option<(RefreshTokenRecord, Session)>> {
                    let q = ::sqlx::query(refresh::WITH_SESSION).bind(hash.as_str());
                    optional(q, self.reader(), |row| {
                        let s = session(row)?;
                        let token = RefreshTokenRecord {
                            hash: TokenHash::from_stored(col(row, "token_hash")?),
                            session_id: s.id.clone(),
                            created_at: col(row, "token_created_at")?,
                            expires_at: col(row, "token_expires_at")?,
                            rotated_at: col(row, "token_rotated_at")?,
                        };
                        Ok((token, s))
                    })
                    .await
                }
                async fn rotate_refresh_token(
                    &self,
                    old: &TokenHash,
                    new: &RefreshTokenRecord,
                    now: i64,
                    meta: &ClientMeta,
                ) -> Result<RotateOutcome> {
                    let old = old.clone();
                    let new = new.clone();
                    let meta = meta.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            // The conditional UPDATE is the lock: of concurrent callers
                            // only one finds `rotated_at IS NULL`.
                            let spend = ::sqlx::query(refresh::SPEND).bind(old.as_str()).bind(now);
                            let spent: Option<String> =
                                optional(spend, &mut *tx, |r| col(r, "session_id")).await?;
                            let Some(session_id) = spent else {
                                let q = ::sqlx::query(refresh::BY_HASH).bind(old.as_str());
                                let existing = optional(q, &mut *tx, refresh_record).await?;
                                tx.rollback().await.map_err(err)?;
                                return Ok(match existing {
                                    None => RotateOutcome::Unknown,
                                    Some(RefreshTokenRecord {
                                        rotated_at: Some(at),
                                        session_id,
                                        ..
                                    }) => RotateOutcome::AlreadyRotated {
                                        session_id,
                                        rotated_at: at,
                                    },
                                    Some(_) => RotateOutcome::Inactive,
                                });
                            };
                            let touch = ::sqlx::query(sessions::TOUCH_AND_EXTEND)
                                .bind(&session_id)
                                .bind(now)
                                .bind(&meta.ip)
                                .bind(&meta.user_agent)
                                .bind(new.expires_at);
                            let Some(s) = optional(touch, &mut *tx, session).await? else {
                                tx.rollback().await.map_err(err)?;
                                return Ok(RotateOutcome::Inactive);
                            };
                            let mut next = new.clone();
                            next.session_id = s.id.clone();
                            insert_refresh(&mut *tx, &next).await?;
                            tx.commit().await.map_err(err)?;
                            Ok(RotateOutcome::Rotated(Box::new(s)))
                        })
                    })
                    .await
                }
            }
        };
    };
}
