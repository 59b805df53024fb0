//! Signing keys of a realm, per purpose: at most one `active`, any number
//! `retiring` (still published until `visible_until`).

pub const INSERT: &str = "INSERT INTO signing_keys (kid, realm_id, alg, purpose, status, \
    sealed_private_key, public_key_der, created_at, visible_until) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// Newest first.
pub const FOR_PURPOSE: &str = "SELECT * FROM signing_keys \
    WHERE realm_id = $1 AND purpose = $2 ORDER BY created_at DESC, kid";
/// Demotes the active key of a purpose, published until `$3`.
pub const RETIRE_ACTIVE: &str = "UPDATE signing_keys SET status = 'retiring', \
    visible_until = $3 WHERE realm_id = $1 AND purpose = $2 AND status = 'active'";
/// `INSERT` of the new active key that follows `RETIRE_ACTIVE`.
pub const INSERT_ACTIVE: &str = "INSERT INTO signing_keys (kid, realm_id, alg, purpose, status, \
    sealed_private_key, public_key_der, created_at, visible_until) \
    VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, NULL)";
pub const SET_STATUS: &str =
    "UPDATE signing_keys SET status = $2, visible_until = $3 WHERE kid = $1";

/// `KeyStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_key_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::keys;

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

            #[$crate::__async_trait]
            impl $crate::KeyStore for $ty {
                async fn insert_key(&self, k: &SigningKeyRecord) -> Result<()> {
                    let k = k.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(keys::INSERT)
                                .bind(&k.kid)
                                .bind(&k.realm_id)
                                .bind(k.alg.as_str())
                                .bind(&k.purpose)
                                .bind(k.status.as_str())
                                .bind(&k.sealed_private_key)
                                .bind(&k.public_key_der)
                                .bind(k.created_at)
                                .bind(k.visible_until);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn keys(
                    &self,
                    realm_id: &str,
                    purpose: &str,
                ) -> Result<Vec<SigningKeyRecord>> {
                    let q = ::sqlx::query(keys::FOR_PURPOSE)
                        .bind(realm_id)
                        .bind(purpose);
                    all(q, self.reader(), key).await
                }
                async fn rotate_keys(
                    &self,
                    new: &SigningKeyRecord,
                    visible_until: i64,
                ) -> Result<()> {
                    let new = new.clone();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(err)?;
                            let retire = ::sqlx::query(keys::RETIRE_ACTIVE)
                                .bind(&new.realm_id)
                                .bind(&new.purpose)
                                .bind(visible_until);
                            execute(retire, &mut *tx).await?;
                            let insert = ::sqlx::query(keys::INSERT_ACTIVE)
                                .bind(&new.kid)
                                .bind(&new.realm_id)
                                .bind(new.alg.as_str())
                                .bind(&new.purpose)
                                .bind(&new.sealed_private_key)
                                .bind(&new.public_key_der)
                                .bind(new.created_at);
                            execute(insert, &mut *tx).await?;
                            tx.commit().await.map_err(err)
                        })
                    })
                    .await
                }
                async fn set_key_status(
                    &self,
                    kid: &str,
                    status: KeyStatus,
                    visible_until: Option<i64>,
                ) -> Result<()> {
                    let kid = kid.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(keys::SET_STATUS)
                                .bind(&kid)
                                .bind(status.as_str())
                                .bind(visible_until);
                            one_row(affected(q, &mut *conn).await?)
                        })
                    })
                    .await
                }
            }
        };
    };
}
