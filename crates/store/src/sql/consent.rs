//! Spent consent challenges, kept until they expire so none is spent twice.

/// The primary key is the claim: a second spender inserts nothing.
pub const SPEND_CHALLENGE: &str = "INSERT INTO consent_challenges \
    (hash, realm_id, did, context_name, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING";
/// A batch of challenges expired by `$1`.
pub const PURGE_CHALLENGES: &str = "DELETE FROM consent_challenges WHERE hash IN \
    (SELECT hash FROM consent_challenges WHERE expires_at <= $1 LIMIT $2)";

/// `ConsentStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_consent_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::{consent, sessions};

            #[$crate::__async_trait]
            impl $crate::ConsentStore for $ty {
                async fn spend_challenge(&self, c: &ConsentChallenge) -> Result<bool> {
                    let c = c.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(consent::SPEND_CHALLENGE)
                                .bind(c.hash.as_str())
                                .bind(&c.realm_id)
                                .bind(&c.did)
                                .bind(&c.context_name)
                                .bind(c.created_at)
                                .bind(c.expires_at);
                            Ok(affected(q, &mut *conn).await? == 1)
                        })
                    })
                    .await
                }
                async fn revoke_device_sessions(
                    &self,
                    realm_id: &str,
                    user_id: &str,
                    context_name: &str,
                    device_id: &str,
                    now: i64,
                ) -> Result<Vec<String>> {
                    let realm_id = realm_id.to_owned();
                    let user_id = user_id.to_owned();
                    let context_name = context_name.to_owned();
                    let device_id = device_id.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(sessions::REVOKE_FOR_DEVICE)
                                .bind(&realm_id)
                                .bind(&user_id)
                                .bind(&context_name)
                                .bind(&device_id)
                                .bind(now);
                            all(q, &mut *conn, |r| col(r, "id")).await
                        })
                    })
                    .await
                }
            }
        };
    };
}
