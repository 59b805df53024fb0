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

            #[$crate::__async_trait]
            impl $crate::Store for $ty {
                async fn ping(&self) -> Result<()> {
                    // Through the writer: ready means able to write.
                    self.write(|conn| {
                        Box::pin(async move { execute(::sqlx::query(store::PING), conn).await })
                    })
                    .await
                }
                fn backend(&self) -> &'static str {
                    <Self>::BACKEND
                }
                async fn purge_expired(&self, before: i64, limit: i64) -> Result<Purged> {
                    // One short statement per table, in this order: other
                    // writers get the lock between them. What a table keeps
                    // past its expiry is documented on its `PURGE` statement.
                    // One batch of a purge statement: `$1` is the cut-off,
                    // `$2` the batch size.
                    let purge = |sql: &'static str| {
                        self.write(move |conn| {
                            Box::pin(async move {
                                affected(::sqlx::query(sql).bind(before).bind(limit), conn).await
                            })
                        })
                    };
                    Ok(Purged {
                        refresh_tokens: purge(refresh::PURGE).await?,
                        sessions: purge(sessions::PURGE).await?,
                        challenges: purge(consent::PURGE_CHALLENGES).await?,
                        codes: purge(browser::PURGE_AUTH_CODES).await?
                            + purge(browser::PURGE_DEVICE_CODES).await?,
                        sso_sessions: purge(browser::PURGE_SSO_SESSIONS).await?,
                        connect: purge(connect::PURGE_PROVIDER_STATES).await?
                            + purge(connect::PURGE_SIGNUPS).await?,
                        throttle: purge(throttle::PURGE).await?,
                    })
                }
            }
        };
    };
}
