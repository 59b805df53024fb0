//! The SQL both backends share. SQLite and PostgreSQL accept the same
//! statements here (`$n` parameters, `RETURNING`, `LIMIT/OFFSET`), and their
//! column types decode to the same Rust types, so the queries are written
//! once: each backend crate expands `sql_store_impl!` over its own pool type
//! and keeps only its connection setup and migrations.
//!
//! The backend type must provide `fn reader(&self) -> &Pool<DB>` and
//! `fn writer(&self) -> &Pool<DB>` (SQLite: many readers, one writer).

/// Maps a driver error onto `StoreError`: unique violations are conflicts.
pub fn map_db_error(e: &(dyn std::error::Error + 'static), is_unique: bool) -> crate::StoreError {
    if is_unique {
        crate::StoreError::Conflict(e.to_string())
    } else {
        crate::StoreError::Unexpected(e.to_string())
    }
}

/// Escapes `%`, `_` and `\` so user search text matches literally in `LIKE`.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[macro_export]
#[doc(hidden)]
macro_rules! sql_store_impl {
    ($ty:ty, $db:ty) => {
        const _: () = {
            use ::sqlx::Row as _;
            use $crate::__core::model::KeyStatus;
            use $crate::__core::{AuthCode, Client, ConsentChallenge, DeviceCode, DeviceStatus, SsoSession, MachineTokenRecord, ProviderConnection, ProviderState, Realm, RefreshTokenRecord, Session, SigningKeyRecord, Signup, TokenHash, User, Workspace, WorkspaceStatus};
            use $crate::{ClientMeta, DeviceDecision, Purged, Redeemed, Result, RotateOutcome, StoreError, UserQuery};
            type Row = <$db as ::sqlx::Database>::Row;

            fn err(e: ::sqlx::Error) -> StoreError {
                let unique = matches!(&e, ::sqlx::Error::Database(d) if d.is_unique_violation());
                $crate::sql::map_db_error(&e, unique)
            }
            fn col<'r, T>(row: &'r Row, name: &str) -> Result<T>
            where
                T: ::sqlx::Decode<'r, $db> + ::sqlx::Type<$db>,
            {
                row.try_get(name).map_err(err)
            }
            fn json<T: $crate::__serde::de::DeserializeOwned>(row: &Row, name: &str) -> Result<T> {
                let text: String = col(row, name)?;
                $crate::__serde_json::from_str(&text)
                    .map_err(|e| StoreError::Unexpected(format!("column {name}: {e}")))
            }
            fn to_json<T: $crate::__serde::Serialize>(v: &T) -> String {
                $crate::__serde_json::to_string(v).unwrap_or_else(|_| "null".into())
            }
            fn realm(row: &Row) -> Result<Realm> {
                let alg: String = col(row, "signing_alg")?;
                Ok(Realm {
                    id: col(row, "id")?,
                    name: col(row, "name")?,
                    display_name: col(row, "display_name")?,
                    enabled: col(row, "enabled")?,
                    signing_alg: alg.parse().map_err(StoreError::Unexpected)?,
                    access_token_lifespan_secs: col(row, "access_token_lifespan_secs")?,
                    session_max_lifespan_secs: col(row, "session_max_lifespan_secs")?,
                    created_at: col(row, "created_at")?,
                })
            }
            fn client(row: &Row) -> Result<Client> {
                let hash: Option<String> = col(row, "secret_hash")?;
                Ok(Client {
                    id: col(row, "id")?,
                    realm_id: col(row, "realm_id")?,
                    client_id: col(row, "client_id")?,
                    name: col(row, "name")?,
                    enabled: col(row, "enabled")?,
                    public_client: col(row, "public_client")?,
                    secret_hash: hash.map(TokenHash::from_stored),
                    secret_generation: col(row, "secret_generation")?,
                    secret_generated: col(row, "secret_generated")?,
                    redirect_uris: json(row, "redirect_uris")?,
                    web_origins: json(row, "web_origins")?,
                    standard_flow_enabled: col(row, "standard_flow_enabled")?,
                    direct_access_grants_enabled: col(row, "direct_access_grants_enabled")?,
                    service_accounts_enabled: col(row, "service_accounts_enabled")?,
                    attributes: json(row, "attributes")?,
                    created_at: col(row, "created_at")?,
                })
            }
            fn user(row: &Row) -> Result<User> {
                Ok(User {
                    id: col(row, "id")?,
                    realm_id: col(row, "realm_id")?,
                    username: col(row, "username")?,
                    email: col(row, "email")?,
                    email_verified: col(row, "email_verified")?,
                    first_name: col(row, "first_name")?,
                    last_name: col(row, "last_name")?,
                    enabled: col(row, "enabled")?,
                    password_hash: col(row, "password_hash")?,
                    password_temporary: col(row, "password_temporary")?,
                    roles: json(row, "roles")?,
                    attributes: json(row, "attributes")?,
                    created_at: col(row, "created_at")?,
                })
            }
            fn session(row: &Row) -> Result<Session> {
                Ok(Session {
                    id: col(row, "id")?,
                    realm_id: col(row, "realm_id")?,
                    user_id: col(row, "user_id")?,
                    client_id: col(row, "client_id")?,
                    device_id: col(row, "device_id")?,
                    ip: col(row, "ip")?,
                    user_agent: col(row, "user_agent")?,
                    context_name: col(row, "context_name")?,
                    origin: col(row, "origin")?,
                    sso_session_id: col(row, "sso_session_id")?,
                    scope: col(row, "scope")?,
                    auth_time: col(row, "auth_time")?,
                    created_at: col(row, "created_at")?,
                    last_used_at: col(row, "last_used_at")?,
                    expires_at: col(row, "expires_at")?,
                    revoked_at: col(row, "revoked_at")?,
                })
            }
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
                    status: DeviceStatus::parse(&status)
                        .ok_or_else(|| StoreError::Unexpected(format!("device code status {status}")))?,
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
            fn provider_state(row: &Row) -> Result<ProviderState> {
                Ok(ProviderState {
                    id: col(row, "id")?,
                    provider: col(row, "provider")?,
                    secret: col(row, "secret")?,
                    created_at: col(row, "created_at")?,
                    expires_at: col(row, "expires_at")?,
                })
            }
            fn signup(row: &Row) -> Result<Signup> {
                Ok(Signup {
                    hash: TokenHash::from_stored(col(row, "hash")?),
                    realm_id: col(row, "realm_id")?,
                    client_id: col(row, "client_id")?,
                    provider: col(row, "provider")?,
                    user_id: col(row, "user_id")?,
                    error: col(row, "error")?,
                    created_at: col(row, "created_at")?,
                    expires_at: col(row, "expires_at")?,
                    completed_at: col(row, "completed_at")?,
                    spent_at: col(row, "spent_at")?,
                })
            }
            fn connection(row: &Row) -> Result<ProviderConnection> {
                Ok(ProviderConnection {
                    realm_id: col(row, "realm_id")?,
                    user_id: col(row, "user_id")?,
                    provider: col(row, "provider")?,
                    subject: col(row, "subject")?,
                    secret: col(row, "secret")?,
                    scopes: json(row, "scopes")?,
                    expires_at: col(row, "expires_at")?,
                    created_at: col(row, "created_at")?,
                    updated_at: col(row, "updated_at")?,
                })
            }
            fn refresh(row: &Row) -> Result<RefreshTokenRecord> {
                Ok(RefreshTokenRecord {
                    hash: TokenHash::from_stored(col(row, "hash")?),
                    session_id: col(row, "session_id")?,
                    created_at: col(row, "created_at")?,
                    expires_at: col(row, "expires_at")?,
                    rotated_at: col(row, "rotated_at")?,
                })
            }
            fn key(row: &Row) -> Result<SigningKeyRecord> {
                let alg: String = col(row, "alg")?;
                let status: String = col(row, "status")?;
                Ok(SigningKeyRecord {
                    kid: col(row, "kid")?,
                    realm_id: col(row, "realm_id")?,
                    alg: alg.parse().map_err(StoreError::Unexpected)?,
                    purpose: col(row, "purpose")?,
                    status: KeyStatus::parse(&status)
                        .ok_or_else(|| StoreError::Unexpected(format!("key status {status}")))?,
                    sealed_private_key: col(row, "sealed_private_key")?,
                    public_key_der: col(row, "public_key_der")?,
                    created_at: col(row, "created_at")?,
                    visible_until: col(row, "visible_until")?,
                })
            }
            fn workspace(row: &Row) -> Result<Workspace> {
                let status: String = col(row, "status")?;
                Ok(Workspace {
                    id: col(row, "id")?,
                    realm_id: col(row, "realm_id")?,
                    owner_id: col(row, "owner_id")?,
                    namespace: col(row, "namespace")?,
                    name: col(row, "name")?,
                    status: WorkspaceStatus::parse(&status)
                        .ok_or_else(|| StoreError::Unexpected(format!("workspace status {status}")))?,
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
            fn one_row(affected: u64) -> Result<()> {
                if affected == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            #[$crate::__async_trait]
            impl $crate::RealmStore for $ty {
                async fn create_realm(&self, r: &Realm) -> Result<()> {
                    ::sqlx::query("INSERT INTO realms (id, name, display_name, enabled, signing_alg, access_token_lifespan_secs, session_max_lifespan_secs, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                        .bind(&r.id).bind(&r.name).bind(&r.display_name).bind(r.enabled)
                        .bind(r.signing_alg.as_str()).bind(r.access_token_lifespan_secs)
                        .bind(r.session_max_lifespan_secs).bind(r.created_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn realm_by_name(&self, name: &str) -> Result<Option<Realm>> {
                    ::sqlx::query("SELECT * FROM realms WHERE name = $1").bind(name)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(realm).transpose()
                }
                async fn list_realms(&self) -> Result<Vec<Realm>> {
                    ::sqlx::query("SELECT * FROM realms ORDER BY name")
                        .fetch_all(self.reader()).await.map_err(err)?
                        .iter().map(realm).collect()
                }
                async fn update_realm(&self, r: &Realm) -> Result<()> {
                    let done = ::sqlx::query("UPDATE realms SET name = $2, display_name = $3, enabled = $4, signing_alg = $5, access_token_lifespan_secs = $6, session_max_lifespan_secs = $7 WHERE id = $1")
                        .bind(&r.id).bind(&r.name).bind(&r.display_name).bind(r.enabled)
                        .bind(r.signing_alg.as_str()).bind(r.access_token_lifespan_secs)
                        .bind(r.session_max_lifespan_secs)
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
                async fn delete_realm(&self, id: &str) -> Result<()> {
                    let done = ::sqlx::query("DELETE FROM realms WHERE id = $1").bind(id)
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
            }

            #[$crate::__async_trait]
            impl $crate::ClientStore for $ty {
                async fn create_client(&self, c: &Client) -> Result<()> {
                    ::sqlx::query("INSERT INTO clients (id, realm_id, client_id, name, enabled, public_client, secret_hash, secret_generation, secret_generated, redirect_uris, web_origins, standard_flow_enabled, direct_access_grants_enabled, service_accounts_enabled, attributes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)")
                        .bind(&c.id).bind(&c.realm_id).bind(&c.client_id).bind(&c.name)
                        .bind(c.enabled).bind(c.public_client)
                        .bind(c.secret_hash.as_ref().map(|h| h.as_str().to_string()))
                        .bind(c.secret_generation).bind(c.secret_generated)
                        .bind(to_json(&c.redirect_uris)).bind(to_json(&c.web_origins))
                        .bind(c.standard_flow_enabled).bind(c.direct_access_grants_enabled)
                        .bind(c.service_accounts_enabled).bind(to_json(&c.attributes)).bind(c.created_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn client(&self, realm_id: &str, id: &str) -> Result<Option<Client>> {
                    ::sqlx::query("SELECT * FROM clients WHERE realm_id = $1 AND id = $2")
                        .bind(realm_id).bind(id)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(client).transpose()
                }
                async fn client_by_client_id(&self, realm_id: &str, client_id: &str) -> Result<Option<Client>> {
                    ::sqlx::query("SELECT * FROM clients WHERE realm_id = $1 AND client_id = $2")
                        .bind(realm_id).bind(client_id)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(client).transpose()
                }
                async fn list_clients(&self, realm_id: &str) -> Result<Vec<Client>> {
                    ::sqlx::query("SELECT * FROM clients WHERE realm_id = $1 ORDER BY client_id")
                        .bind(realm_id)
                        .fetch_all(self.reader()).await.map_err(err)?
                        .iter().map(client).collect()
                }
                async fn update_client(&self, c: &Client) -> Result<()> {
                    let done = ::sqlx::query("UPDATE clients SET client_id = $3, name = $4, enabled = $5, public_client = $6, secret_hash = $7, secret_generation = $8, secret_generated = $9, redirect_uris = $10, web_origins = $11, standard_flow_enabled = $12, direct_access_grants_enabled = $13, service_accounts_enabled = $14, attributes = $15 WHERE realm_id = $1 AND id = $2")
                        .bind(&c.realm_id).bind(&c.id).bind(&c.client_id).bind(&c.name)
                        .bind(c.enabled).bind(c.public_client)
                        .bind(c.secret_hash.as_ref().map(|h| h.as_str().to_string()))
                        .bind(c.secret_generation).bind(c.secret_generated)
                        .bind(to_json(&c.redirect_uris)).bind(to_json(&c.web_origins))
                        .bind(c.standard_flow_enabled).bind(c.direct_access_grants_enabled)
                        .bind(c.service_accounts_enabled).bind(to_json(&c.attributes))
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
                async fn delete_client(&self, realm_id: &str, id: &str) -> Result<()> {
                    let done = ::sqlx::query("DELETE FROM clients WHERE realm_id = $1 AND id = $2")
                        .bind(realm_id).bind(id)
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
            }

            #[$crate::__async_trait]
            impl $crate::UserStore for $ty {
                async fn create_user(&self, u: &User) -> Result<()> {
                    ::sqlx::query("INSERT INTO users (id, realm_id, username, email, email_verified, first_name, last_name, enabled, password_hash, password_temporary, roles, attributes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
                        .bind(&u.id).bind(&u.realm_id).bind(&u.username).bind(&u.email)
                        .bind(u.email_verified).bind(&u.first_name).bind(&u.last_name)
                        .bind(u.enabled).bind(&u.password_hash).bind(u.password_temporary)
                        .bind(to_json(&u.roles)).bind(to_json(&u.attributes)).bind(u.created_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn user(&self, realm_id: &str, id: &str) -> Result<Option<User>> {
                    ::sqlx::query("SELECT * FROM users WHERE realm_id = $1 AND id = $2")
                        .bind(realm_id).bind(id)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(user).transpose()
                }
                async fn user_by_username(&self, realm_id: &str, username: &str) -> Result<Option<User>> {
                    ::sqlx::query("SELECT * FROM users WHERE realm_id = $1 AND username = $2")
                        .bind(realm_id).bind(username)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(user).transpose()
                }
                async fn list_users(&self, realm_id: &str, q: &UserQuery) -> Result<Vec<User>> {
                    // Unused filters bind NULL and drop out of the WHERE clause,
                    // so one prepared statement serves every query shape.
                    let like = |v: &Option<String>| v.as_deref().map($crate::sql::like_pattern);
                    let exact = |v: &Option<String>| v.as_ref().map(|s| s.to_lowercase());
                    let (user_exact, user_like) = if q.exact { (exact(&q.username), None) } else { (None, like(&q.username)) };
                    let (email_exact, email_like) = if q.exact { (exact(&q.email), None) } else { (None, like(&q.email)) };
                    ::sqlx::query("SELECT * FROM users WHERE realm_id = $1 \
                        AND ($2 IS NULL OR lower(username) LIKE $2 ESCAPE '\\' OR lower(coalesce(email, '')) LIKE $2 ESCAPE '\\' OR lower(coalesce(first_name, '')) LIKE $2 ESCAPE '\\' OR lower(coalesce(last_name, '')) LIKE $2 ESCAPE '\\') \
                        AND ($3 IS NULL OR username = $3) AND ($4 IS NULL OR lower(username) LIKE $4 ESCAPE '\\') \
                        AND ($5 IS NULL OR lower(coalesce(email, '')) = $5) AND ($6 IS NULL OR lower(coalesce(email, '')) LIKE $6 ESCAPE '\\') \
                        ORDER BY username LIMIT $7 OFFSET $8")
                        .bind(realm_id).bind(like(&q.search)).bind(user_exact).bind(user_like)
                        .bind(email_exact).bind(email_like).bind(q.max.max(0)).bind(q.first.max(0))
                        .fetch_all(self.reader()).await.map_err(err)?
                        .iter().map(user).collect()
                }
                async fn count_users(&self, realm_id: &str) -> Result<i64> {
                    let row = ::sqlx::query("SELECT COUNT(*) AS n FROM users WHERE realm_id = $1")
                        .bind(realm_id).fetch_one(self.reader()).await.map_err(err)?;
                    col(&row, "n")
                }
                async fn update_user(&self, u: &User) -> Result<()> {
                    let done = ::sqlx::query("UPDATE users SET username = $3, email = $4, email_verified = $5, first_name = $6, last_name = $7, enabled = $8, password_hash = $9, password_temporary = $10, roles = $11, attributes = $12 WHERE realm_id = $1 AND id = $2")
                        .bind(&u.realm_id).bind(&u.id).bind(&u.username).bind(&u.email)
                        .bind(u.email_verified).bind(&u.first_name).bind(&u.last_name)
                        .bind(u.enabled).bind(&u.password_hash).bind(u.password_temporary)
                        .bind(to_json(&u.roles)).bind(to_json(&u.attributes))
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
                async fn set_password(&self, realm_id: &str, id: &str, hash: &str, temporary: bool) -> Result<()> {
                    let done = ::sqlx::query("UPDATE users SET password_hash = $3, password_temporary = $4 WHERE realm_id = $1 AND id = $2")
                        .bind(realm_id).bind(id).bind(hash).bind(temporary)
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
                async fn delete_user(&self, realm_id: &str, id: &str) -> Result<()> {
                    let done = ::sqlx::query("DELETE FROM users WHERE realm_id = $1 AND id = $2")
                        .bind(realm_id).bind(id)
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
            }

            #[$crate::__async_trait]
            impl $crate::SessionStore for $ty {
                async fn create_session(&self, s: &Session, first: &RefreshTokenRecord) -> Result<()> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    insert_session(&mut tx, s, first).await?;
                    tx.commit().await.map_err(err)
                }
                async fn session(&self, id: &str) -> Result<Option<Session>> {
                    ::sqlx::query("SELECT * FROM sessions WHERE id = $1").bind(id)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(session).transpose()
                }
                async fn user_sessions(&self, realm_id: &str, user_id: &str, now: i64) -> Result<Vec<Session>> {
                    ::sqlx::query("SELECT * FROM sessions WHERE realm_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 ORDER BY created_at DESC, id")
                        .bind(realm_id).bind(user_id).bind(now)
                        .fetch_all(self.reader()).await.map_err(err)?
                        .iter().map(session).collect()
                }
                async fn revoke_session(&self, id: &str, now: i64) -> Result<Option<String>> {
                    ::sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING user_id")
                        .bind(id).bind(now)
                        .fetch_optional(self.writer()).await.map_err(err)?
                        .map(|r| col(&r, "user_id")).transpose()
                }
                async fn revoke_user_sessions(&self, realm_id: &str, user_id: &str, now: i64) -> Result<Vec<String>> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    ::sqlx::query("UPDATE sso_sessions SET revoked_at = $3 WHERE realm_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3")
                        .bind(realm_id).bind(user_id).bind(now)
                        .execute(&mut *tx).await.map_err(err)?;
                    let ids = ::sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE realm_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 RETURNING id")
                        .bind(realm_id).bind(user_id).bind(now)
                        .fetch_all(&mut *tx).await.map_err(err)?
                        .iter().map(|r| col(r, "id")).collect::<Result<Vec<String>>>()?;
                    // A device the user approved but that has not collected
                    // its tokens yet must not get them now.
                    ::sqlx::query("UPDATE device_codes SET status = 'denied' WHERE realm_id = $1 AND user_id = $2 AND status = 'approved' AND spent_at IS NULL")
                        .bind(realm_id).bind(user_id)
                        .execute(&mut *tx).await.map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(ids)
                }
                async fn revoke_client_sessions(&self, realm_id: &str, client_id: &str, now: i64) -> Result<Vec<(String, String)>> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    let ended = ::sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE realm_id = $1 AND client_id = $2 AND revoked_at IS NULL AND expires_at > $3 RETURNING user_id, id")
                        .bind(realm_id).bind(client_id).bind(now)
                        .fetch_all(&mut *tx).await.map_err(err)?
                        .iter().map(|r| Ok((col(r, "user_id")?, col(r, "id")?))).collect::<Result<Vec<(String, String)>>>()?;
                    ::sqlx::query("UPDATE device_codes SET status = 'denied' WHERE realm_id = $1 AND client_id = $2 AND status = 'approved' AND spent_at IS NULL")
                        .bind(realm_id).bind(client_id)
                        .execute(&mut *tx).await.map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(ended)
                }
                async fn touch_session(&self, id: &str, now: i64, meta: &ClientMeta) -> Result<Option<Session>> {
                    ::sqlx::query("UPDATE sessions SET last_used_at = $2, ip = coalesce($3, ip), user_agent = coalesce($4, user_agent) WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING *")
                        .bind(id).bind(now).bind(&meta.ip).bind(&meta.user_agent)
                        .fetch_optional(self.writer()).await.map_err(err)?
                        .as_ref().map(session).transpose()
                }
            }

            async fn insert_session(
                tx: &mut ::sqlx::Transaction<'_, $db>,
                s: &Session,
                first: &RefreshTokenRecord,
            ) -> Result<()> {
                ::sqlx::query("INSERT INTO sessions (id, realm_id, user_id, client_id, device_id, ip, user_agent, scope, auth_time, created_at, last_used_at, expires_at, revoked_at, context_name, origin, sso_session_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)")
                    .bind(&s.id).bind(&s.realm_id).bind(&s.user_id).bind(&s.client_id)
                    .bind(&s.device_id).bind(&s.ip).bind(&s.user_agent).bind(&s.scope)
                    .bind(s.auth_time).bind(s.created_at).bind(s.last_used_at)
                    .bind(s.expires_at).bind(s.revoked_at)
                    .bind(&s.context_name).bind(&s.origin).bind(&s.sso_session_id)
                    .execute(&mut **tx).await.map_err(err)?;
                insert_refresh(tx, first).await
            }

            async fn insert_refresh(
                tx: &mut ::sqlx::Transaction<'_, $db>,
                t: &RefreshTokenRecord,
            ) -> Result<()> {
                ::sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at, rotated_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(t.hash.as_str()).bind(&t.session_id).bind(t.created_at)
                    .bind(t.expires_at).bind(t.rotated_at)
                    .execute(&mut **tx).await.map_err(err)?;
                Ok(())
            }

            #[$crate::__async_trait]
            impl $crate::RefreshTokenStore for $ty {
                async fn refresh_token(&self, hash: &TokenHash) -> Result<Option<RefreshTokenRecord>> {
                    ::sqlx::query("SELECT * FROM refresh_tokens WHERE hash = $1").bind(hash.as_str())
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(refresh).transpose()
                }
                async fn rotate_refresh_token(&self, old: &TokenHash, new: &RefreshTokenRecord, now: i64, meta: &ClientMeta) -> Result<RotateOutcome> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    // The conditional UPDATE is the lock: of concurrent callers
                    // only one finds `rotated_at IS NULL`.
                    let spent = ::sqlx::query("UPDATE refresh_tokens SET rotated_at = $2 WHERE hash = $1 AND rotated_at IS NULL AND expires_at > $2 RETURNING session_id")
                        .bind(old.as_str()).bind(now)
                        .fetch_optional(&mut *tx).await.map_err(err)?;
                    let Some(spent) = spent else {
                        let existing = ::sqlx::query("SELECT * FROM refresh_tokens WHERE hash = $1")
                            .bind(old.as_str()).fetch_optional(&mut *tx).await.map_err(err)?
                            .as_ref().map(refresh).transpose()?;
                        tx.rollback().await.map_err(err)?;
                        return Ok(match existing {
                            None => RotateOutcome::Unknown,
                            Some(RefreshTokenRecord { rotated_at: Some(at), session_id, .. }) => {
                                RotateOutcome::AlreadyRotated { session_id, rotated_at: at }
                            }
                            Some(_) => RotateOutcome::Inactive,
                        });
                    };
                    let session_id: String = col(&spent, "session_id")?;
                    let touched = ::sqlx::query("UPDATE sessions SET last_used_at = $2, ip = coalesce($3, ip), user_agent = coalesce($4, user_agent), expires_at = CASE WHEN $5 > expires_at THEN $5 ELSE expires_at END WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING *")
                        .bind(&session_id).bind(now).bind(&meta.ip).bind(&meta.user_agent).bind(new.expires_at)
                        .fetch_optional(&mut *tx).await.map_err(err)?;
                    let Some(touched) = touched else {
                        tx.rollback().await.map_err(err)?;
                        return Ok(RotateOutcome::Inactive);
                    };
                    let s = session(&touched)?;
                    let mut next = new.clone();
                    next.session_id = s.id.clone();
                    insert_refresh(&mut tx, &next).await?;
                    tx.commit().await.map_err(err)?;
                    Ok(RotateOutcome::Rotated(Box::new(s)))
                }
            }

            #[$crate::__async_trait]
            impl $crate::KeyStore for $ty {
                async fn insert_key(&self, k: &SigningKeyRecord) -> Result<()> {
                    ::sqlx::query("INSERT INTO signing_keys (kid, realm_id, alg, purpose, status, sealed_private_key, public_key_der, created_at, visible_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                        .bind(&k.kid).bind(&k.realm_id).bind(k.alg.as_str()).bind(&k.purpose)
                        .bind(k.status.as_str()).bind(&k.sealed_private_key).bind(&k.public_key_der)
                        .bind(k.created_at).bind(k.visible_until)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn keys(&self, realm_id: &str, purpose: &str) -> Result<Vec<SigningKeyRecord>> {
                    ::sqlx::query("SELECT * FROM signing_keys WHERE realm_id = $1 AND purpose = $2 ORDER BY created_at DESC, kid")
                        .bind(realm_id).bind(purpose)
                        .fetch_all(self.reader()).await.map_err(err)?
                        .iter().map(key).collect()
                }
                async fn rotate_keys(&self, new: &SigningKeyRecord, visible_until: i64) -> Result<()> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    ::sqlx::query("UPDATE signing_keys SET status = 'retiring', visible_until = $3 WHERE realm_id = $1 AND purpose = $2 AND status = 'active'")
                        .bind(&new.realm_id).bind(&new.purpose).bind(visible_until)
                        .execute(&mut *tx).await.map_err(err)?;
                    ::sqlx::query("INSERT INTO signing_keys (kid, realm_id, alg, purpose, status, sealed_private_key, public_key_der, created_at, visible_until) VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, NULL)")
                        .bind(&new.kid).bind(&new.realm_id).bind(new.alg.as_str()).bind(&new.purpose)
                        .bind(&new.sealed_private_key).bind(&new.public_key_der).bind(new.created_at)
                        .execute(&mut *tx).await.map_err(err)?;
                    tx.commit().await.map_err(err)
                }
                async fn set_key_status(&self, kid: &str, status: KeyStatus, visible_until: Option<i64>) -> Result<()> {
                    let done = ::sqlx::query("UPDATE signing_keys SET status = $2, visible_until = $3 WHERE kid = $1")
                        .bind(kid).bind(status.as_str()).bind(visible_until)
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
            }

            #[$crate::__async_trait]
            impl $crate::WorkspaceStore for $ty {
                async fn create_workspace(&self, w: &Workspace) -> Result<()> {
                    ::sqlx::query("INSERT INTO workspaces (id, realm_id, owner_id, namespace, name, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                        .bind(&w.id).bind(&w.realm_id).bind(&w.owner_id).bind(&w.namespace).bind(&w.name)
                        .bind(w.status.as_str()).bind(w.created_at).bind(w.updated_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn workspace(&self, realm_id: &str, id: &str) -> Result<Option<Workspace>> {
                    ::sqlx::query("SELECT * FROM workspaces WHERE realm_id = $1 AND id = $2")
                        .bind(realm_id).bind(id)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(workspace).transpose()
                }
                async fn workspace_by_name(&self, realm_id: &str, namespace: &str, name: &str) -> Result<Option<Workspace>> {
                    ::sqlx::query("SELECT * FROM workspaces WHERE realm_id = $1 AND namespace = $2 AND name = $3")
                        .bind(realm_id).bind(namespace).bind(name)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(workspace).transpose()
                }
                async fn user_workspaces(&self, realm_id: &str, user_id: &str) -> Result<Vec<Workspace>> {
                    ::sqlx::query("SELECT * FROM workspaces WHERE realm_id = $1 AND (owner_id = $2 OR id IN (SELECT workspace_id FROM workspace_members WHERE user_id = $2)) ORDER BY namespace, name")
                        .bind(realm_id).bind(user_id)
                        .fetch_all(self.reader()).await.map_err(err)?
                        .iter().map(workspace).collect()
                }
                async fn set_workspace_status(&self, id: &str, status: WorkspaceStatus, now: i64) -> Result<()> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    let done = ::sqlx::query("UPDATE workspaces SET status = $2, updated_at = $3 WHERE id = $1")
                        .bind(id).bind(status.as_str()).bind(now)
                        .execute(&mut *tx).await.map_err(err)?;
                    one_row(done.rows_affected())?;
                    // Both transitions revoke live tokens: stopping ends them, and
                    // starting clears any a request raced in while it stopped,
                    // so a new run always gets new tokens.
                    ::sqlx::query("UPDATE machine_tokens SET revoked_at = $2 WHERE workspace_id = $1 AND revoked_at IS NULL")
                        .bind(id).bind(now)
                        .execute(&mut *tx).await.map_err(err)?;
                    tx.commit().await.map_err(err)
                }
                async fn delete_workspace(&self, realm_id: &str, id: &str) -> Result<()> {
                    let done = ::sqlx::query("DELETE FROM workspaces WHERE realm_id = $1 AND id = $2 AND status = 'STOPPED'")
                        .bind(realm_id).bind(id)
                        .execute(self.writer()).await.map_err(err)?;
                    one_row(done.rows_affected())
                }
                async fn add_workspace_member(&self, workspace_id: &str, user_id: &str) -> Result<()> {
                    ::sqlx::query("INSERT INTO workspace_members (workspace_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(workspace_id).bind(user_id)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn is_workspace_member(&self, workspace_id: &str, user_id: &str) -> Result<bool> {
                    let row = ::sqlx::query("SELECT COUNT(*) AS n FROM workspace_members WHERE workspace_id = $1 AND user_id = $2")
                        .bind(workspace_id).bind(user_id)
                        .fetch_one(self.reader()).await.map_err(err)?;
                    let n: i64 = col(&row, "n")?;
                    Ok(n > 0)
                }
                async fn insert_machine_token(&self, t: &MachineTokenRecord) -> Result<()> {
                    ::sqlx::query("INSERT INTO machine_tokens (jti, workspace_id, user_id, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(&t.jti).bind(&t.workspace_id).bind(&t.user_id).bind(t.created_at).bind(t.revoked_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn live_machine_token(&self, workspace_id: &str, user_id: &str) -> Result<Option<MachineTokenRecord>> {
                    ::sqlx::query("SELECT * FROM machine_tokens WHERE workspace_id = $1 AND user_id = $2 AND revoked_at IS NULL")
                        .bind(workspace_id).bind(user_id)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(machine).transpose()
                }
                async fn machine_token(&self, jti: &str) -> Result<Option<MachineTokenRecord>> {
                    ::sqlx::query("SELECT * FROM machine_tokens WHERE jti = $1")
                        .bind(jti)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(machine).transpose()
                }
            }

            #[$crate::__async_trait]
            impl $crate::ConsentStore for $ty {
                async fn spend_challenge(&self, c: &ConsentChallenge) -> Result<bool> {
                    // The primary key is the claim: a second spender inserts nothing.
                    let done = ::sqlx::query("INSERT INTO consent_challenges (hash, realm_id, did, context_name, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING")
                        .bind(c.hash.as_str()).bind(&c.realm_id).bind(&c.did).bind(&c.context_name)
                        .bind(c.created_at).bind(c.expires_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(done.rows_affected() == 1)
                }
                async fn revoke_device_sessions(&self, realm_id: &str, user_id: &str, context_name: &str, device_id: &str, now: i64) -> Result<Vec<String>> {
                    ::sqlx::query("UPDATE sessions SET revoked_at = $5 WHERE realm_id = $1 AND user_id = $2 AND context_name = $3 AND device_id = $4 AND revoked_at IS NULL AND expires_at > $5 RETURNING id")
                        .bind(realm_id).bind(user_id).bind(context_name).bind(device_id).bind(now)
                        .fetch_all(self.writer()).await.map_err(err)?
                        .iter().map(|r| col(r, "id")).collect()
                }
            }

            #[$crate::__async_trait]
            impl $crate::BrowserStore for $ty {
                async fn create_sso_session(&self, s: &SsoSession) -> Result<()> {
                    ::sqlx::query("INSERT INTO sso_sessions (id, realm_id, user_id, secret_hash, ip, user_agent, auth_time, created_at, last_used_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                        .bind(&s.id).bind(&s.realm_id).bind(&s.user_id).bind(s.secret_hash.as_str())
                        .bind(&s.ip).bind(&s.user_agent).bind(s.auth_time).bind(s.created_at)
                        .bind(s.last_used_at).bind(s.expires_at).bind(s.revoked_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn touch_sso_session(&self, hash: &TokenHash, now: i64) -> Result<Option<SsoSession>> {
                    ::sqlx::query("UPDATE sso_sessions SET last_used_at = $2 WHERE secret_hash = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING *")
                        .bind(hash.as_str()).bind(now)
                        .fetch_optional(self.writer()).await.map_err(err)?
                        .as_ref().map(sso).transpose()
                }
                async fn renew_sso_session(&self, id: &str, secret_hash: &TokenHash, now: i64, expires_at: i64) -> Result<Option<SsoSession>> {
                    ::sqlx::query("UPDATE sso_sessions SET secret_hash = $2, auth_time = $3, last_used_at = $3, expires_at = $4 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $3 RETURNING *")
                        .bind(id).bind(secret_hash.as_str()).bind(now).bind(expires_at)
                        .fetch_optional(self.writer()).await.map_err(err)?
                        .as_ref().map(sso).transpose()
                }
                async fn sso_session(&self, id: &str) -> Result<Option<SsoSession>> {
                    ::sqlx::query("SELECT * FROM sso_sessions WHERE id = $1").bind(id)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(sso).transpose()
                }
                async fn user_sso_sessions(&self, realm_id: &str, user_id: &str, now: i64) -> Result<Vec<SsoSession>> {
                    ::sqlx::query("SELECT * FROM sso_sessions WHERE realm_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 ORDER BY created_at DESC, id")
                        .bind(realm_id).bind(user_id).bind(now)
                        .fetch_all(self.reader()).await.map_err(err)?
                        .iter().map(sso).collect()
                }
                async fn revoke_sso_session(&self, id: &str, now: i64) -> Result<Option<(String, Vec<String>)>> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    // The app sessions end even when the SSO session itself
                    // has expired: they outlive it (30 days against hours).
                    ::sqlx::query("UPDATE sso_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                        .bind(id).bind(now)
                        .execute(&mut *tx).await.map_err(err)?;
                    let owner = ::sqlx::query("SELECT user_id FROM sso_sessions WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx).await.map_err(err)?;
                    let Some(owner) = owner else {
                        tx.rollback().await.map_err(err)?;
                        return Ok(None);
                    };
                    let user_id: String = col(&owner, "user_id")?;
                    let ids = ::sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE sso_session_id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING id")
                        .bind(id).bind(now)
                        .fetch_all(&mut *tx).await.map_err(err)?
                        .iter().map(|r| col(r, "id")).collect::<Result<Vec<String>>>()?;
                    tx.commit().await.map_err(err)?;
                    Ok(Some((user_id, ids)))
                }
                async fn insert_auth_code(&self, c: &AuthCode) -> Result<()> {
                    ::sqlx::query("INSERT INTO auth_codes (hash, realm_id, client_id, user_id, sso_session_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time, created_at, expires_at, spent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
                        .bind(c.hash.as_str()).bind(&c.realm_id).bind(&c.client_id).bind(&c.user_id)
                        .bind(&c.sso_session_id).bind(&c.session_id).bind(&c.redirect_uri).bind(&c.scope)
                        .bind(&c.nonce).bind(&c.code_challenge).bind(c.auth_time).bind(c.created_at)
                        .bind(c.expires_at).bind(c.spent_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn auth_code(&self, hash: &TokenHash) -> Result<Option<AuthCode>> {
                    ::sqlx::query("SELECT * FROM auth_codes WHERE hash = $1").bind(hash.as_str())
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(auth_code).transpose()
                }
                async fn redeem_auth_code(&self, hash: &TokenHash, now: i64, s: &Session, first: &RefreshTokenRecord) -> Result<Redeemed> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    // The conditional UPDATE is the lock, as for refresh tokens.
                    let spent = ::sqlx::query("UPDATE auth_codes SET spent_at = $2 WHERE hash = $1 AND spent_at IS NULL RETURNING sso_session_id")
                        .bind(hash.as_str()).bind(now)
                        .fetch_optional(&mut *tx).await.map_err(err)?;
                    if let Some(spent) = spent {
                        // Writing the SSO row takes its lock: a logout running
                        // now either commits first (and this finds it revoked)
                        // or waits and then revokes the session made here.
                        let sso_id: String = col(&spent, "sso_session_id")?;
                        let live = ::sqlx::query("UPDATE sso_sessions SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING id")
                            .bind(&sso_id).bind(now)
                            .fetch_optional(&mut *tx).await.map_err(err)?;
                        if live.is_none() {
                            tx.rollback().await.map_err(err)?;
                            return Ok(Redeemed::Gone);
                        }
                    } else {
                        let before = ::sqlx::query("SELECT session_id FROM auth_codes WHERE hash = $1")
                            .bind(hash.as_str())
                            .fetch_optional(&mut *tx).await.map_err(err)?;
                        tx.rollback().await.map_err(err)?;
                        return Ok(match before {
                            Some(row) => Redeemed::AlreadySpent { session_id: col(&row, "session_id")? },
                            None => Redeemed::Gone,
                        });
                    }
                    insert_session(&mut tx, s, first).await?;
                    tx.commit().await.map_err(err)?;
                    Ok(Redeemed::Created)
                }
                async fn insert_device_code(&self, d: &DeviceCode) -> Result<()> {
                    ::sqlx::query("INSERT INTO device_codes (hash, user_code, realm_id, client_id, scope, session_id, status, user_id, sso_session_id, auth_time, interval_secs, last_polled_at, created_at, expires_at, spent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
                        .bind(d.hash.as_str()).bind(&d.user_code).bind(&d.realm_id).bind(&d.client_id)
                        .bind(&d.scope).bind(&d.session_id).bind(d.status.as_str()).bind(&d.user_id)
                        .bind(&d.sso_session_id).bind(d.auth_time).bind(d.interval_secs)
                        .bind(d.last_polled_at).bind(d.created_at).bind(d.expires_at).bind(d.spent_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn device_code(&self, hash: &TokenHash) -> Result<Option<DeviceCode>> {
                    ::sqlx::query("SELECT * FROM device_codes WHERE hash = $1").bind(hash.as_str())
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(device).transpose()
                }
                async fn device_code_by_user_code(&self, realm_id: &str, user_code: &str) -> Result<Option<DeviceCode>> {
                    ::sqlx::query("SELECT * FROM device_codes WHERE realm_id = $1 AND user_code = $2")
                        .bind(realm_id).bind(user_code)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .as_ref().map(device).transpose()
                }
                async fn record_device_poll(&self, hash: &TokenHash, now: i64) -> Result<bool> {
                    let on_time = ::sqlx::query("UPDATE device_codes SET last_polled_at = $2 WHERE hash = $1 AND (last_polled_at IS NULL OR last_polled_at + interval_secs * 1000 - 1000 <= $2)")
                        .bind(hash.as_str()).bind(now)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    if on_time == 1 {
                        return Ok(true);
                    }
                    ::sqlx::query("UPDATE device_codes SET interval_secs = interval_secs + 5, last_polled_at = $2 WHERE hash = $1")
                        .bind(hash.as_str()).bind(now)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(false)
                }
                async fn decide_device_code(&self, realm_id: &str, user_code: &str, d: &DeviceDecision, now: i64) -> Result<bool> {
                    let status = if d.approve { DeviceStatus::Approved } else { DeviceStatus::Denied };
                    let done = ::sqlx::query("UPDATE device_codes SET status = $3, user_id = $4, sso_session_id = $5, auth_time = $6 WHERE realm_id = $1 AND user_code = $2 AND status = 'pending' AND expires_at > $7")
                        .bind(realm_id).bind(user_code).bind(status.as_str()).bind(&d.user_id)
                        .bind(&d.sso_session_id).bind(d.auth_time).bind(now)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(done.rows_affected() == 1)
                }
                async fn redeem_device_code(&self, hash: &TokenHash, now: i64, s: &Session, first: &RefreshTokenRecord) -> Result<Redeemed> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    let spent = ::sqlx::query("UPDATE device_codes SET spent_at = $2 WHERE hash = $1 AND status = 'approved' AND spent_at IS NULL RETURNING hash")
                        .bind(hash.as_str()).bind(now)
                        .fetch_optional(&mut *tx).await.map_err(err)?;
                    if spent.is_none() {
                        let before = ::sqlx::query("SELECT session_id, spent_at FROM device_codes WHERE hash = $1")
                            .bind(hash.as_str())
                            .fetch_optional(&mut *tx).await.map_err(err)?;
                        tx.rollback().await.map_err(err)?;
                        return Ok(match before {
                            Some(row) if col::<Option<i64>>(&row, "spent_at")?.is_some() => {
                                Redeemed::AlreadySpent { session_id: col(&row, "session_id")? }
                            }
                            _ => Redeemed::Gone,
                        });
                    }
                    insert_session(&mut tx, s, first).await?;
                    tx.commit().await.map_err(err)?;
                    Ok(Redeemed::Created)
                }
            }

            #[$crate::__async_trait]
            impl $crate::ConnectStore for $ty {
                async fn insert_provider_state(&self, st: &ProviderState) -> Result<()> {
                    ::sqlx::query("INSERT INTO provider_states (id, provider, secret, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(&st.id).bind(&st.provider).bind(&st.secret).bind(st.created_at).bind(st.expires_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn take_provider_state(&self, id: &str, now: i64) -> Result<Option<ProviderState>> {
                    let row = ::sqlx::query("DELETE FROM provider_states WHERE id = $1 RETURNING *")
                        .bind(id)
                        .fetch_optional(self.writer()).await.map_err(err)?;
                    match row {
                        Some(row) => Ok(Some(provider_state(&row)?).filter(|st| st.expires_at > now)),
                        None => Ok(None),
                    }
                }
                async fn insert_signup(&self, su: &Signup) -> Result<()> {
                    ::sqlx::query("INSERT INTO signups (hash, realm_id, client_id, provider, user_id, error, created_at, expires_at, completed_at, spent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                        .bind(su.hash.as_str()).bind(&su.realm_id).bind(&su.client_id).bind(&su.provider)
                        .bind(&su.user_id).bind(&su.error).bind(su.created_at).bind(su.expires_at)
                        .bind(su.completed_at).bind(su.spent_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn signup(&self, hash: &TokenHash) -> Result<Option<Signup>> {
                    ::sqlx::query("SELECT * FROM signups WHERE hash = $1").bind(hash.as_str())
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .map(|r| signup(&r)).transpose()
                }
                async fn complete_signup(&self, hash: &TokenHash, user_id: Option<&str>, error: Option<&str>, now: i64) -> Result<bool> {
                    let done = ::sqlx::query("UPDATE signups SET user_id = $2, error = $3, completed_at = $4 WHERE hash = $1 AND completed_at IS NULL AND expires_at > $4")
                        .bind(hash.as_str()).bind(user_id).bind(error).bind(now)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(done.rows_affected() == 1)
                }
                async fn spend_signup(&self, hash: &TokenHash, now: i64, s: &Session, first: &RefreshTokenRecord) -> Result<bool> {
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    let spent = ::sqlx::query("UPDATE signups SET spent_at = $2 WHERE hash = $1 AND user_id IS NOT NULL AND spent_at IS NULL AND expires_at > $2 RETURNING hash")
                        .bind(hash.as_str()).bind(now)
                        .fetch_optional(&mut *tx).await.map_err(err)?;
                    if spent.is_none() {
                        tx.rollback().await.map_err(err)?;
                        return Ok(false);
                    }
                    insert_session(&mut tx, s, first).await?;
                    tx.commit().await.map_err(err)?;
                    Ok(true)
                }
                async fn put_provider_connection(&self, c: &ProviderConnection) -> Result<()> {
                    ::sqlx::query("INSERT INTO provider_connections (realm_id, user_id, provider, subject, secret, scopes, expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (user_id, provider) DO UPDATE SET subject = excluded.subject, secret = excluded.secret, scopes = excluded.scopes, expires_at = excluded.expires_at, updated_at = excluded.updated_at")
                        .bind(&c.realm_id).bind(&c.user_id).bind(&c.provider).bind(&c.subject)
                        .bind(&c.secret).bind(to_json(&c.scopes)).bind(c.expires_at)
                        .bind(c.created_at).bind(c.updated_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn update_provider_tokens(&self, c: &ProviderConnection) -> Result<bool> {
                    let done = ::sqlx::query("UPDATE provider_connections SET secret = $3, expires_at = $4, updated_at = $5 WHERE user_id = $1 AND provider = $2")
                        .bind(&c.user_id).bind(&c.provider).bind(&c.secret).bind(c.expires_at).bind(c.updated_at)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(done.rows_affected() == 1)
                }
                async fn provider_connection(&self, user_id: &str, provider: &str) -> Result<Option<ProviderConnection>> {
                    ::sqlx::query("SELECT * FROM provider_connections WHERE user_id = $1 AND provider = $2")
                        .bind(user_id).bind(provider)
                        .fetch_optional(self.reader()).await.map_err(err)?
                        .map(|r| connection(&r)).transpose()
                }
                async fn user_provider_connections(&self, user_id: &str) -> Result<Vec<ProviderConnection>> {
                    ::sqlx::query("SELECT * FROM provider_connections WHERE user_id = $1 ORDER BY provider")
                        .bind(user_id)
                        .fetch_all(self.reader()).await.map_err(err)?
                        .iter().map(connection).collect()
                }
                async fn provider_identity_user(&self, realm_id: &str, provider: &str, subject: &str) -> Result<Option<String>> {
                    let row = ::sqlx::query("SELECT user_id FROM provider_connections WHERE realm_id = $1 AND provider = $2 AND subject = $3")
                        .bind(realm_id).bind(provider).bind(subject)
                        .fetch_optional(self.reader()).await.map_err(err)?;
                    row.map(|r| col(&r, "user_id")).transpose()
                }
                async fn delete_provider_connection(&self, user_id: &str, provider: &str) -> Result<Option<ProviderConnection>> {
                    ::sqlx::query("DELETE FROM provider_connections WHERE user_id = $1 AND provider = $2 RETURNING *")
                        .bind(user_id).bind(provider)
                        .fetch_optional(self.writer()).await.map_err(err)?
                        .map(|r| connection(&r)).transpose()
                }
            }

            #[$crate::__async_trait]
            impl $crate::ThrottleStore for $ty {
                async fn hit(&self, key: &str, now: i64, window: i64) -> Result<(i64, i64)> {
                    // Every expression of the update reads the old row, so
                    // an ended window restarts at `now` with one hit.
                    let row = ::sqlx::query("INSERT INTO throttle (key, window_start, hits) VALUES ($1, $2, 1) ON CONFLICT (key) DO UPDATE SET hits = CASE WHEN throttle.window_start <= $2 - $3 THEN 1 ELSE throttle.hits + 1 END, window_start = CASE WHEN throttle.window_start <= $2 - $3 THEN $2 ELSE throttle.window_start END RETURNING hits, window_start")
                        .bind(key).bind(now).bind(window)
                        .fetch_one(self.writer()).await.map_err(err)?;
                    Ok((col(&row, "hits")?, col(&row, "window_start")?))
                }
                async fn unhit(&self, key: &str, window_start: i64) -> Result<()> {
                    ::sqlx::query("UPDATE throttle SET hits = hits - 1 WHERE key = $1 AND window_start = $2 AND hits > 0")
                        .bind(key).bind(window_start)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
                async fn clear_hits(&self, key: &str) -> Result<()> {
                    ::sqlx::query("DELETE FROM throttle WHERE key = $1")
                        .bind(key)
                        .execute(self.writer()).await.map_err(err)?;
                    Ok(())
                }
            }

            #[$crate::__async_trait]
            impl $crate::Store for $ty {
                async fn ping(&self) -> Result<()> {
                    ::sqlx::query("SELECT 1").execute(self.reader()).await.map_err(err)?;
                    Ok(())
                }
                fn backend(&self) -> &'static str {
                    <Self>::BACKEND
                }
                async fn purge_expired(&self, before: i64, limit: i64) -> Result<Purged> {
                    // One short statement per table: other writers get the
                    // lock between them. Sessions revoked less than a day ago
                    // stay, so reuse of their tokens is still recognised.
                    let refresh_tokens = ::sqlx::query("DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    let sessions = ::sqlx::query("DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at <= $1 UNION SELECT id FROM sessions WHERE revoked_at <= $1 - 86400000 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    let challenges = ::sqlx::query("DELETE FROM consent_challenges WHERE hash IN (SELECT hash FROM consent_challenges WHERE expires_at <= $1 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    // Codes outlive their expiry by 10 minutes, so a late
                    // replay still revokes what the code produced and a late
                    // poll still hears `expired_token`.
                    let mut codes = ::sqlx::query("DELETE FROM auth_codes WHERE hash IN (SELECT hash FROM auth_codes WHERE expires_at <= $1 - 600000 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    codes += ::sqlx::query("DELETE FROM device_codes WHERE hash IN (SELECT hash FROM device_codes WHERE expires_at <= $1 - 600000 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    let sso_sessions = ::sqlx::query("DELETE FROM sso_sessions WHERE id IN (SELECT id FROM sso_sessions WHERE expires_at <= $1 UNION SELECT id FROM sso_sessions WHERE revoked_at <= $1 - 86400000 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    // Sign-ups outlive their expiry by 10 minutes, so a late
                    // poll hears `expired_token` rather than "unknown".
                    let mut connect = ::sqlx::query("DELETE FROM provider_states WHERE id IN (SELECT id FROM provider_states WHERE expires_at <= $1 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    connect += ::sqlx::query("DELETE FROM signups WHERE hash IN (SELECT hash FROM signups WHERE expires_at <= $1 - 600000 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    let throttle = ::sqlx::query("DELETE FROM throttle WHERE key IN (SELECT key FROM throttle WHERE window_start <= $1 - 86400000 LIMIT $2)")
                        .bind(before).bind(limit)
                        .execute(self.writer()).await.map_err(err)?.rows_affected();
                    Ok(Purged { refresh_tokens, sessions, challenges, codes, sso_sessions, connect, throttle })
                }
            }
        };
    };
}
