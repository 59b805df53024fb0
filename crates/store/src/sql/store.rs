//! `Store` itself: the health check and garbage collection, which runs the
//! `PURGE` statements of the other modules.

/// The cheapest round trip, for `/health/ready`.
pub const PING: &str = "SELECT 1";

/// `Store` for `$ty` over `$db`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_store {
    ($ty:ty, $db:ty) => {
        const _: () = {
            use $crate::sql::{browser, connect, consent, refresh, sessions, store, throttle};

            /// Runs one batch of a purge statement: `$1` is the cut-off,
            /// `$2` the batch size.
            async fn purge(
                pool: &::sqlx::Pool<$db>,
                sql: &'static str,
                before: i64,
                limit: i64,
            ) -> Result<u64> {
                affected(::sqlx::query(sql).bind(before).bind(limit), pool).await
            }

            #[$crate::__async_trait]
            impl $crate::Store for $ty {
                async fn ping(&self) -> Result<()> {
                    execute(::sqlx::query(store::PING), self.reader()).await
                }
                fn backend(&self) -> &'static str {
                    <Self>::BACKEND
                }
                async fn purge_expired(&self, before: i64, limit: i64) -> Result<Purged> {
                    // One short statement per table, in this order: other
                    // writers get the lock between them. What a table keeps
                    // past its expiry is documented on its `PURGE` statement.
                    let db = self.writer();
                    Ok(Purged {
                        refresh_tokens: purge(db, refresh::PURGE, before, limit).await?,
                        sessions: purge(db, sessions::PURGE, before, limit).await?,
                        challenges: purge(db, consent::PURGE_CHALLENGES, before, limit).await?,
                        codes: purge(db, browser::PURGE_AUTH_CODES, before, limit).await?
                            + purge(db, browser::PURGE_DEVICE_CODES, before, limit).await?,
                        sso_sessions: purge(db, browser::PURGE_SSO_SESSIONS, before, limit).await?,
                        connect: purge(db, connect::PURGE_PROVIDER_STATES, before, limit).await?
                            + purge(db, connect::PURGE_SIGNUPS, before, limit).await?,
                        throttle: purge(db, throttle::PURGE, before, limit).await?,
                    })
                }
            }
        };
    };
}
