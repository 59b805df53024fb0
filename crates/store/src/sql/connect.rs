//! Upstream identity providers: the state of a login round trip, sign-ups
//! that a device polls for, and the connections a user keeps.

pub const INSERT_PROVIDER_STATE: &str = "INSERT INTO provider_states \
    (id, provider, secret, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
/// Deletes and returns a state, so it is taken at most once.
pub const TAKE_PROVIDER_STATE: &str = "DELETE FROM provider_states WHERE id = $1 RETURNING *";
/// A batch of states expired by `$1`.
pub const PURGE_PROVIDER_STATES: &str = "DELETE FROM provider_states WHERE id IN \
    (SELECT id FROM provider_states WHERE expires_at <= $1 LIMIT $2)";

pub const INSERT_SIGNUP: &str = "INSERT INTO signups (hash, realm_id, client_id, provider, \
    user_id, error, created_at, expires_at, completed_at, spent_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub const SIGNUP_BY_HASH: &str = "SELECT * FROM signups WHERE hash = $1";
/// Completes an unexpired sign-up once, with a user (`$2`) or an error (`$3`).
pub const COMPLETE_SIGNUP: &str = "UPDATE signups SET user_id = $2, error = $3, \
    completed_at = $4 WHERE hash = $1 AND completed_at IS NULL AND expires_at > $4";
/// Spends an unexpired sign-up that produced a user, once.
pub const SPEND_SIGNUP: &str = "UPDATE signups SET spent_at = $2 WHERE hash = $1 \
    AND user_id IS NOT NULL AND spent_at IS NULL AND expires_at > $2 RETURNING hash";
/// A batch of sign-ups expired 10 minutes before `$1`: a late poll hears
/// `expired_token` rather than "unknown".
pub const PURGE_SIGNUPS: &str = "DELETE FROM signups WHERE hash IN \
    (SELECT hash FROM signups WHERE expires_at <= $1 - 600000 LIMIT $2)";

/// Inserts or replaces a user's connection to a provider (all but `realm_id`
/// and `created_at`).
pub const PUT_CONNECTION: &str = "INSERT INTO provider_connections (realm_id, user_id, \
    provider, subject, secret, scopes, expires_at, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
    ON CONFLICT (user_id, provider) DO UPDATE SET subject = excluded.subject, \
    secret = excluded.secret, scopes = excluded.scopes, expires_at = excluded.expires_at, \
    updated_at = excluded.updated_at";
pub const UPDATE_CONNECTION_TOKENS: &str = "UPDATE provider_connections SET secret = $3, \
    expires_at = $4, updated_at = $5 WHERE user_id = $1 AND provider = $2";
pub const CONNECTION: &str =
    "SELECT * FROM provider_connections WHERE user_id = $1 AND provider = $2";
pub const USER_CONNECTIONS: &str =
    "SELECT * FROM provider_connections WHERE user_id = $1 ORDER BY provider";
/// The user a provider's subject is connected to.
pub const IDENTITY_USER: &str = "SELECT user_id FROM provider_connections \
    WHERE realm_id = $1 AND provider = $2 AND subject = $3";
pub const DELETE_CONNECTION: &str =
    "DELETE FROM provider_connections WHERE user_id = $1 AND provider = $2 RETURNING *";

/// `ConnectStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_connect_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::connect;

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

            #[$crate::__async_trait]
            impl $crate::ConnectStore for $ty {
                async fn insert_provider_state(&self, st: &ProviderState) -> Result<()> {
                    let st = st.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(connect::INSERT_PROVIDER_STATE)
                                .bind(&st.id)
                                .bind(&st.provider)
                                .bind(&st.secret)
                                .bind(st.created_at)
                                .bind(st.expires_at);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn take_provider_state(
                    &self,
                    id: &str,
                    now: i64,
                ) -> Result<Option<ProviderState>> {
                    let id = id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(connect::TAKE_PROVIDER_STATE).bind(&id);
                            let taken = optional(q, &mut *conn, provider_state).await?;
                            Ok(taken.filter(|st| st.expires_at > now))
                        })
                    })
                    .await
                }
                async fn insert_signup(&self, su: &Signup) -> Result<()> {
                    let su = su.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(connect::INSERT_SIGNUP)
                                .bind(su.hash.as_str())
                                .bind(&su.realm_id)
                                .bind(&su.client_id)
                                .bind(&su.provider)
                                .bind(&su.user_id)
                                .bind(&su.error)
                                .bind(su.created_at)
                                .bind(su.expires_at)
                                .bind(su.completed_at)
                                .bind(su.spent_at);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn signup(&self, hash: &TokenHash) -> Result<Option<Signup>> {
                    let q = ::sqlx::query(connect::SIGNUP_BY_HASH).bind(hash.as_str());
                    optional(q, self.reader(), signup).await
                }
                async fn complete_signup(
                    &self,
                    hash: &TokenHash,
                    user_id: Option<&str>,
                    error: Option<&str>,
                    now: i64,
                ) -> Result<bool> {
                    let hash = hash.clone();
                    let user_id = user_id.map(str::to_owned);
                    let error = error.map(str::to_owned);
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(connect::COMPLETE_SIGNUP)
                                .bind(hash.as_str())
                                .bind(user_id)
                                .bind(error)
                                .bind(now);
                            Ok(affected(q, &mut *conn).await? == 1)
                        })
                    })
                    .await
                }
                async fn spend_signup(
                    &self,
                    hash: &TokenHash,
                    now: i64,
                    s: &Session,
                    first: &RefreshTokenRecord,
                ) -> Result<bool> {
                    let hash = hash.clone();
                    let s = s.clone();
                    let first = first.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            let spend = ::sqlx::query(connect::SPEND_SIGNUP)
                                .bind(hash.as_str())
                                .bind(now);
                            if !returns_row(spend, &mut *tx).await? {
                                tx.rollback().await.map_err(err)?;
                                return Ok(false);
                            }
                            insert_session(&mut *tx, &s, &first).await?;
                            tx.commit().await.map_err(err)?;
                            Ok(true)
                        })
                    })
                    .await
                }
                async fn put_provider_connection(&self, c: &ProviderConnection) -> Result<()> {
                    let c = c.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(connect::PUT_CONNECTION)
                                .bind(&c.realm_id)
                                .bind(&c.user_id)
                                .bind(&c.provider)
                                .bind(&c.subject)
                                .bind(&c.secret)
                                .bind(to_json(&c.scopes))
                                .bind(c.expires_at)
                                .bind(c.created_at)
                                .bind(c.updated_at);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn update_provider_tokens(&self, c: &ProviderConnection) -> Result<bool> {
                    let c = c.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(connect::UPDATE_CONNECTION_TOKENS)
                                .bind(&c.user_id)
                                .bind(&c.provider)
                                .bind(&c.secret)
                                .bind(c.expires_at)
                                .bind(c.updated_at);
                            Ok(affected(q, &mut *conn).await? == 1)
                        })
                    })
                    .await
                }
                async fn provider_connection(
                    &self,
                    user_id: &str,
                    provider: &str,
                ) -> Result<Option<ProviderConnection>> {
                    let q = ::sqlx::query(connect::CONNECTION)
                        .bind(user_id)
                        .bind(provider);
                    optional(q, self.reader(), connection).await
                }
                async fn user_provider_connections(
                    &self,
                    user_id: &str,
                ) -> Result<Vec<ProviderConnection>> {
                    let q = ::sqlx::query(connect::USER_CONNECTIONS).bind(user_id);
                    all(q, self.reader(), connection).await
                }
                async fn provider_identity_user(
                    &self,
                    realm_id: &str,
                    provider: &str,
                    subject: &str,
                ) -> Result<Option<String>> {
                    let q = ::sqlx::query(connect::IDENTITY_USER)
                        .bind(realm_id)
                        .bind(provider)
                        .bind(subject);
                    optional(q, self.reader(), |r| col(r, "user_id")).await
                }
                async fn delete_provider_connection(
                    &self,
                    user_id: &str,
                    provider: &str,
                ) -> Result<Option<ProviderConnection>> {
                    let user_id = user_id.to_owned();
                    let provider = provider.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(connect::DELETE_CONNECTION)
                                .bind(&user_id)
                                .bind(&provider);
                            optional(q, &mut *conn, connection).await
                        })
                    })
                    .await
                }
            }
        };
    };
}
