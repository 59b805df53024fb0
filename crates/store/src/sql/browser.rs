//! What the browser flows keep: SSO sessions (the login cookie), the
//! authorization codes they issue, and device codes awaiting approval.

pub const INSERT_SSO_SESSION: &str = "INSERT INTO sso_sessions (id, realm_id, user_id, \
    secret_hash, ip, user_agent, auth_time, created_at, last_used_at, expires_at, revoked_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
/// Marks the live SSO session of a cookie (`$1`) used at `$2`.
pub const TOUCH_SSO_SESSION: &str = "UPDATE sso_sessions SET last_used_at = $2 \
    WHERE secret_hash = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING *";
/// A fresh login on a live SSO session: new cookie secret `$2`, new
/// `auth_time` `$3` and expiry `$4`.
pub const RENEW_SSO_SESSION: &str = "UPDATE sso_sessions SET secret_hash = $2, auth_time = $3, \
    last_used_at = $3, expires_at = $4 \
    WHERE id = $1 AND revoked_at IS NULL AND expires_at > $3 RETURNING *";
pub const SSO_SESSION_BY_ID: &str = "SELECT * FROM sso_sessions WHERE id = $1";
/// A user's live SSO sessions at `$3`, newest first.
pub const LIVE_SSO_SESSIONS_FOR_USER: &str = "SELECT * FROM sso_sessions \
    WHERE realm_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
    ORDER BY created_at DESC, id";
/// Revokes one SSO session, expired or not, unless it already is.
pub const REVOKE_SSO_SESSION: &str =
    "UPDATE sso_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub const SSO_SESSION_OWNER: &str = "SELECT realm_id, user_id FROM sso_sessions WHERE id = $1";
pub const REVOKE_USER_SSO_SESSIONS: &str = "UPDATE sso_sessions SET revoked_at = $3 \
    WHERE realm_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3";
/// Marks a live SSO session used by its id; returns no row if it is not live.
pub const USE_SSO_SESSION: &str = "UPDATE sso_sessions SET last_used_at = $2 \
    WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING id";
/// A batch of SSO sessions expired by `$1` or revoked a day before it.
pub const PURGE_SSO_SESSIONS: &str = "DELETE FROM sso_sessions WHERE id IN \
    (SELECT id FROM sso_sessions WHERE expires_at <= $1 \
    UNION SELECT id FROM sso_sessions WHERE revoked_at <= $1 - 86400000 LIMIT $2)";

pub const INSERT_AUTH_CODE: &str = "INSERT INTO auth_codes (hash, realm_id, client_id, user_id, \
    sso_session_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time, \
    created_at, expires_at, spent_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub const AUTH_CODE_BY_HASH: &str = "SELECT * FROM auth_codes WHERE hash = $1";
/// Spends a code at `$2` unless it already is, returning its SSO session.
pub const SPEND_AUTH_CODE: &str = "UPDATE auth_codes SET spent_at = $2 \
    WHERE hash = $1 AND spent_at IS NULL RETURNING sso_session_id";
/// The session a spent code produced.
pub const AUTH_CODE_SESSION: &str = "SELECT session_id FROM auth_codes WHERE hash = $1";
/// A batch of codes expired 10 minutes before `$1`: a late replay still
/// revokes what the code produced.
pub const PURGE_AUTH_CODES: &str = "DELETE FROM auth_codes WHERE hash IN \
    (SELECT hash FROM auth_codes WHERE expires_at <= $1 - 600000 LIMIT $2)";

pub const INSERT_DEVICE_CODE: &str = "INSERT INTO device_codes (hash, user_code, realm_id, \
    client_id, scope, session_id, status, user_id, sso_session_id, auth_time, interval_secs, \
    last_polled_at, created_at, expires_at, spent_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
pub const DEVICE_CODE_BY_HASH: &str = "SELECT * FROM device_codes WHERE hash = $1";
pub const DEVICE_CODE_BY_USER_CODE: &str =
    "SELECT * FROM device_codes WHERE realm_id = $1 AND user_code = $2";
/// Records a poll at `$2` only if it keeps the interval (with a second of
/// slack); no row changes when the device polls too fast.
pub const POLL_DEVICE_CODE: &str = "UPDATE device_codes SET last_polled_at = $2 \
    WHERE hash = $1 \
    AND (last_polled_at IS NULL OR last_polled_at + interval_secs * 1000 - 1000 <= $2)";
/// Answers a poll that came too fast: RFC 8628's `slow_down` adds 5 seconds.
pub const SLOW_DOWN_DEVICE_CODE: &str = "UPDATE device_codes \
    SET interval_secs = interval_secs + 5, last_polled_at = $2 WHERE hash = $1";
/// Approves or denies (`$3`) a pending, unexpired code for user `$4`.
pub const DECIDE_DEVICE_CODE: &str = "UPDATE device_codes SET status = $3, user_id = $4, \
    sso_session_id = $5, auth_time = $6 \
    WHERE realm_id = $1 AND user_code = $2 AND status = 'pending' AND expires_at > $7";
pub const SPEND_DEVICE_CODE: &str = "UPDATE device_codes SET spent_at = $2 \
    WHERE hash = $1 AND status = 'approved' AND spent_at IS NULL RETURNING hash";
/// Whether a code that could not be spent already was, and its session.
pub const DEVICE_CODE_SPENT: &str = "SELECT session_id, spent_at FROM device_codes WHERE hash = $1";
/// A user's approved codes that have not collected their tokens yet.
pub const DENY_USER_DEVICE_CODES: &str = "UPDATE device_codes SET status = 'denied' \
    WHERE realm_id = $1 AND user_id = $2 AND status = 'approved' AND spent_at IS NULL";
/// A client's approved codes that have not collected their tokens yet.
pub const DENY_CLIENT_DEVICE_CODES: &str = "UPDATE device_codes SET status = 'denied' \
    WHERE realm_id = $1 AND client_id = $2 AND status = 'approved' AND spent_at IS NULL";
/// A batch of codes expired 10 minutes before `$1`: a late poll still hears
/// `expired_token`.
pub const PURGE_DEVICE_CODES: &str = "DELETE FROM device_codes WHERE hash IN \
    (SELECT hash FROM device_codes WHERE expires_at <= $1 - 600000 LIMIT $2)";

/// `BrowserStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_browser_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::{browser, sessions};

            fn sso(row: &Row) -> Result<SsoSession> {
                Ok(SsoSession {
                    id: col(row, "id")?,
                    realm_id: col(row, "realm_id")?,
                    user_id: col(row, "user_id")?,
                    secret_hash: TokenHash::from_stored(col(row, "secret_hash")?),
                    ip: col(row, "ip")?,
                    user_agent: col(row, "user_agent")?,
                    auth_time: col(row, "auth_time")?,
                    created_at: col(row, "created_at")?,
                    last_used_at: col(row, "last_used_at")?,
                    expires_at: col(row, "expires_at")?,
                    revoked_at: col(row, "revoked_at")?,
                })
            }
            fn auth_code(row: &Row) -> Result<AuthCode> {
                Ok(AuthCode {
                    hash: TokenHash::from_stored(col(row, "hash")?),
                    realm_id: col(row, "realm_id")?,
                    client_id: col(row, "client_id")?,
                    user_id: col(row, "user_id")?,
                    sso_session_id: col(row, "sso_session_id")?,
                    session_id: col(row, "session_id")?,
                    redirect_uri: col(row, "redirect_uri")?,
                    scope: col(row, "scope")?,
                    nonce: col(row, "nonce")?,
                    code_challenge: col(row, "code_challenge")?,
                    auth_time: col(row, "auth_time")?,
                    created_at: col(row, "created_at")?,
                    expires_at: col(row, "expires_at")?,
                    spent_at: col(row, "spent_at")?,
                })
            }
            fn device(row: &Row) -> Result<DeviceCode> {
                let status: String = col(row, "status")?;
                Ok(DeviceCode {
                    hash: TokenHash::from_stored(col(row, "hash")?),
                    user_code: col(row, "user_code")?,
                    realm_id: col(row, "realm_id")?,
                    client_id: col(row, "client_id")?,
                    scope: col(row, "scope")?,
                    session_id: col(row, "session_id")?,
                    status: DeviceStatus::parse(&status).ok_or_else(|| {
                        StoreError::Unexpected(format!("device code status {status}"))
                    })?,
                    user_id: col(row, "user_id")?,
                    sso_session_id: col(row, "sso_session_id")?,
                    auth_time: col(row, "auth_time")?,
                    interval_secs: col(row, "interval_secs")?,
                    last_polled_at: col(row, "last_polled_at")?,
                    created_at: col(row, "created_at")?,
                    expires_at: col(row, "expires_at")?,
                    spent_at: col(row, "spent_at")?,
                })
            }

            #[$crate::__async_trait]
            impl $crate::BrowserStore for $ty {
                async fn create_sso_session(&self, s: &SsoSession) -> Result<()> {
                    let s = s.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(browser::INSERT_SSO_SESSION)
                                .bind(&s.id)
                                .bind(&s.realm_id)
                                .bind(&s.user_id)
                                .bind(s.secret_hash.as_str())
                                .bind(&s.ip)
                                .bind(&s.user_agent)
                                .bind(s.auth_time)
                                .bind(s.created_at)
                                .bind(s.last_used_at)
                                .bind(s.expires_at)
                                .bind(s.revoked_at);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn touch_sso_session(
                    &self,
                    hash: &TokenHash,
                    now: i64,
                ) -> Result<Option<SsoSession>> {
                    let hash = hash.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(browser::TOUCH_SSO_SESSION)
                                .bind(hash.as_str())
                                .bind(now);
                            optional(q, &mut *conn, sso).await
                        })
                    })
                    .await
                }
                async fn renew_sso_session(
                    &self,
                    id: &str,
                    secret_hash: &TokenHash,
                    now: i64,
                    expires_at: i64,
                ) -> Result<Option<SsoSession>> {
                    let id = id.to_owned();
                    let secret_hash = secret_hash.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(browser::RENEW_SSO_SESSION)
                                .bind(&id)
                                .bind(secret_hash.as_str())
                                .bind(now)
                                .bind(expires_at);
                            optional(q, &mut *conn, sso).await
                        })
                    })
                    .await
                }
                async fn sso_session(&self, id: &str) -> Result<Option<SsoSession>> {
                    let q = ::sqlx::query(browser::SSO_SESSION_BY_ID).bind(id);
                    optional(q, self.reader(), sso).await
                }
                async fn user_sso_sessions(
                    &self,
                    realm_id: &str,
                    user_id: &str,
                    now: i64,
                ) -> Result<Vec<SsoSession>> {
                    let q = ::sqlx::query(browser::LIVE_SSO_SESSIONS_FOR_USER)
                        .bind(realm_id)
                        .bind(user_id)
                        .bind(now);
                    all(q, self.reader(), sso).await
                }
                async fn revoke_sso_session(
                    &self,
                    id: &str,
                    now: i64,
                ) -> Result<Option<(SessionOwner, Vec<String>)>> {
                    let id = id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            // The app sessions end even when the SSO session itself
                            // has expired: they outlive it (30 days against hours).
                            let revoke = ::sqlx::query(browser::REVOKE_SSO_SESSION)
                                .bind(&id)
                                .bind(now);
                            execute(revoke, &mut *tx).await?;
                            let owner = ::sqlx::query(browser::SSO_SESSION_OWNER).bind(&id);
                            let Some(user) = optional(owner, &mut *tx, session_owner).await? else {
                                tx.rollback().await.map_err(err)?;
                                return Ok(None);
                            };
                            let apps = ::sqlx::query(sessions::REVOKE_FOR_SSO).bind(&id).bind(now);
                            let ids = all(apps, &mut *tx, |r| col(r, "id")).await?;
                            tx.commit().await.map_err(err)?;
                            Ok(Some((user, ids)))
                        })
                    })
                    .await
                }
                async fn insert_auth_code(&self, c: &AuthCode) -> Result<()> {
                    let c = c.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(browser::INSERT_AUTH_CODE)
                                .bind(c.hash.as_str())
                                .bind(&c.realm_id)
                                .bind(&c.client_id)
                                .bind(&c.user_id)
                                .bind(&c.sso_session_id)
                                .bind(&c.session_id)
                                .bind(&c.redirect_uri)
                                .bind(&c.scope)
                                .bind(&c.nonce)
                                .bind(&c.code_challenge)
                                .bind(c.auth_time)
                                .bind(c.created_at)
                                .bind(c.expires_at)
                                .bind(c.spent_at);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn auth_code(&self, hash: &TokenHash) -> Result<Option<AuthCode>> {
                    let q = ::sqlx::query(browser::AUTH_CODE_BY_HASH).bind(hash.as_str());
                    optional(q, self.reader(), auth_code).await
                }
                async fn redeem_auth_code(
                    &self,
                    hash: &TokenHash,
                    now: i64,
                    s: &Session,
                    first: &RefreshTokenRecord,
                ) -> Result<Redeemed> {
                    let hash = hash.clone();
                    let s = s.clone();
                    let first = first.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            // The conditional UPDATE is the lock, as for refresh tokens.
                            let spend = ::sqlx::query(browser::SPEND_AUTH_CODE)
                                .bind(hash.as_str())
                                .bind(now);
                            let spent: Option<String> =
                                optional(spend, &mut *tx, |r| col(r, "sso_session_id")).await?;
                            if let Some(sso_id) = spent {
                                // Writing the SSO row takes its lock: a logout running
                                // now either commits first (and this finds it revoked)
                                // or waits and then revokes the session made here.
                                let touch = ::sqlx::query(browser::USE_SSO_SESSION)
                                    .bind(&sso_id)
                                    .bind(now);
                                if !returns_row(touch, &mut *tx).await? {
                                    tx.rollback().await.map_err(err)?;
                                    return Ok(Redeemed::Gone);
                                }
                            } else {
                                let q =
                                    ::sqlx::query(browser::AUTH_CODE_SESSION).bind(hash.as_str());
                                let before =
                                    optional(q, &mut *tx, |r| col(r, "session_id")).await?;
                                tx.rollback().await.map_err(err)?;
                                return Ok(match before {
                                    Some(session_id) => Redeemed::AlreadySpent { session_id },
                                    None => Redeemed::Gone,
                                });
                            }
                            insert_session(&mut *tx, &s, &first).await?;
                            tx.commit().await.map_err(err)?;
                            Ok(Redeemed::Created)
                        })
                    })
                    .await
                }
                async fn insert_device_code(&self, d: &DeviceCode) -> Result<()> {
                    let d = d.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(browser::INSERT_DEVICE_CODE)
                                .bind(d.hash.as_str())
                                .bind(&d.user_code)
                                .bind(&d.realm_id)
                                .bind(&d.client_id)
                                .bind(&d.scope)
                                .bind(&d.session_id)
                                .bind(d.status.as_str())
                                .bind(&d.user_id)
                                .bind(&d.sso_session_id)
                                .bind(d.auth_time)
                                .bind(d.interval_secs)
                                .bind(d.last_polled_at)
                                .bind(d.created_at)
                                .bind(d.expires_at)
                                .bind(d.spent_at);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn device_code(&self, hash: &TokenHash) -> Result<Option<DeviceCode>> {
                    let q = ::sqlx::query(browser::DEVICE_CODE_BY_HASH).bind(hash.as_str());
                    optional(q, self.reader(), device).await
                }
                async fn device_code_by_user_code(
                    &self,
                    realm_id: &str,
                    user_code: &str,
                ) -> Result<Option<DeviceCode>> {
                    let q = ::sqlx::query(browser::DEVICE_CODE_BY_USER_CODE)
                        .bind(realm_id)
                        .bind(user_code);
                    optional(q, self.reader(), device).await
                }
                async fn record_device_poll(&self, hash: &TokenHash, now: i64) -> Result<bool> {
                    let hash = hash.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let poll = ::sqlx::query(browser::POLL_DEVICE_CODE)
                                .bind(hash.as_str())
                                .bind(now);
                            if affected(poll, &mut *conn).await? == 1 {
                                return Ok(true);
                            }
                            let slow_down = ::sqlx::query(browser::SLOW_DOWN_DEVICE_CODE)
                                .bind(hash.as_str())
                                .bind(now);
                            execute(slow_down, &mut *conn).await?;
                            Ok(false)
                        })
                    })
                    .await
                }
                async fn decide_device_code(
                    &self,
                    realm_id: &str,
                    user_code: &str,
                    d: &DeviceDecision,
                    now: i64,
                ) -> Result<bool> {
                    let realm_id = realm_id.to_owned();
                    let user_code = user_code.to_owned();
                    let d = d.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let status = if d.approve {
                                DeviceStatus::Approved
                            } else {
                                DeviceStatus::Denied
                            };
                            let q = ::sqlx::query(browser::DECIDE_DEVICE_CODE)
                                .bind(&realm_id)
                                .bind(&user_code)
                                .bind(status.as_str())
                                .bind(&d.user_id)
                                .bind(&d.sso_session_id)
                                .bind(d.auth_time)
                                .bind(now);
                            Ok(affected(q, &mut *conn).await? == 1)
                        })
                    })
                    .await
                }
                async fn redeem_device_code(
                    &self,
                    hash: &TokenHash,
                    now: i64,
                    s: &Session,
                    first: &RefreshTokenRecord,
                ) -> Result<Redeemed> {
                    let hash = hash.clone();
                    let s = s.clone();
                    let first = first.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            let spend = ::sqlx::query(browser::SPEND_DEVICE_CODE)
                                .bind(hash.as_str())
                                .bind(now);
                            if !returns_row(spend, &mut *tx).await? {
                                let q =
                                    ::sqlx::query(browser::DEVICE_CODE_SPENT).bind(hash.as_str());
                                let before: Option<(Option<i64>, String)> =
                                    optional(q, &mut *tx, |r| {
                                        Ok((col(r, "spent_at")?, col(r, "session_id")?))
                                    })
                                    .await?;
                                tx.rollback().await.map_err(err)?;
                                return Ok(match before {
                                    Some((Some(_), session_id)) => {
                                        Redeemed::AlreadySpent { session_id }
                                    }
                                    _ => Redeemed::Gone,
                                });
                            }
                            insert_session(&mut *tx, &s, &first).await?;
                            tx.commit().await.map_err(err)?;
                            Ok(Redeemed::Created)
                        })
                    })
                    .await
                }
            }
        };
    };
}
