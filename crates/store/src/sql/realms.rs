//! Realms, the tenancy root.

pub const INSERT: &str = "INSERT INTO realms (id, name, display_name, enabled, signing_alg, \
    access_token_lifespan_secs, session_max_lifespan_secs, attributes, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub const BY_NAME: &str = "SELECT * FROM realms WHERE name = $1";
pub const ALL: &str = "SELECT * FROM realms ORDER BY name";
/// Rewrites everything but the id (`$1`) and `created_at`.
pub const UPDATE: &str = "UPDATE realms SET name = $2, display_name = $3, enabled = $4, \
    signing_alg = $5, access_token_lifespan_secs = $6, session_max_lifespan_secs = $7, \
    attributes = $8 WHERE id = $1";
/// The schema's foreign keys cascade to everything in the realm.
pub const DELETE: &str = "DELETE FROM realms WHERE id = $1";

/// `RealmStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_realm_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::realms;

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
                    attributes: json(row, "attributes")?,
                    created_at: col(row, "created_at")?,
                })
            }

            /// Binds every column but `created_at`, from the id (`$1`) on:
            /// `INSERT` adds `created_at`, `UPDATE` has no more.
            fn bind_realm<'q>(q: Query<'q>, r: &'q Realm) -> Query<'q> {
                q.bind(&r.id)
                    .bind(&r.name)
                    .bind(&r.display_name)
                    .bind(r.enabled)
                    .bind(r.signing_alg.as_str())
                    .bind(r.access_token_lifespan_secs)
                    .bind(r.session_max_lifespan_secs)
                    .bind(to_json(&r.attributes))
            }

            #[$crate::__async_trait]
            impl $crate::RealmStore for $ty {
                async fn create_realm(&self, r: &Realm) -> Result<()> {
                    let r = r.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            let q =
                                bind_realm(::sqlx::query(realms::INSERT), &r).bind(r.created_at);
                            execute(q, c).await
                        })
                    })
                    .await
                }
                async fn realm_by_name(&self, name: &str) -> Result<Option<Realm>> {
                    let q = ::sqlx::query(realms::BY_NAME).bind(name);
                    optional(q, self.reader(), realm).await
                }
                async fn list_realms(&self) -> Result<Vec<Realm>> {
                    all(::sqlx::query(realms::ALL), self.reader(), realm).await
                }
                async fn update_realm(&self, r: &Realm) -> Result<()> {
                    let r = r.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            let q = bind_realm(::sqlx::query(realms::UPDATE), &r);
                            one_row(affected(q, c).await?)
                        })
                    })
                    .await
                }
                async fn delete_realm(&self, id: &str) -> Result<()> {
                    let id = id.to_owned();
                    self.write(move |c| {
                        Box::pin(async move {
                            let q = ::sqlx::query(realms::DELETE).bind(&id);
                            one_row(affected(q, c).await?)
                        })
                    })
                    .await
                }
            }
        };
    };
}
