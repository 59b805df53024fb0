//! Users of a realm, and Keycloak's user search.

pub const INSERT: &str = "INSERT INTO users (id, realm_id, username, email, email_verified, \
    first_name, last_name, enabled, password_hash, password_temporary, roles, attributes, \
    created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub const BY_ID: &str = "SELECT * FROM users WHERE realm_id = $1 AND id = $2";
pub const BY_USERNAME: &str = "SELECT * FROM users WHERE realm_id = $1 AND username = $2";
/// Every `UserQuery` shape in one statement: an unused filter binds NULL and
/// drops out. `$2` is the search `LIKE` pattern (username, email, first or
/// last name); `$3`/`$4` the exact/`LIKE` username and `$5`/`$6` the
/// exact/`LIKE` email, lowercased; `$7` and `$8` the page.
pub const SEARCH: &str = "SELECT * FROM users WHERE realm_id = $1 \
    AND ($2 IS NULL OR lower(username) LIKE $2 ESCAPE '\\' \
    OR lower(coalesce(email, '')) LIKE $2 ESCAPE '\\' \
    OR lower(coalesce(first_name, '')) LIKE $2 ESCAPE '\\' \
    OR lower(coalesce(last_name, '')) LIKE $2 ESCAPE '\\') \
    AND ($3 IS NULL OR username = $3) AND ($4 IS NULL OR lower(username) LIKE $4 ESCAPE '\\') \
    AND ($5 IS NULL OR lower(coalesce(email, '')) = $5) \
    AND ($6 IS NULL OR lower(coalesce(email, '')) LIKE $6 ESCAPE '\\') \
    ORDER BY username LIMIT $7 OFFSET $8";
pub const COUNT: &str = "SELECT COUNT(*) AS n FROM users WHERE realm_id = $1";
/// Rewrites everything but the key (`$1`, `$2`) and `created_at`.
pub const UPDATE: &str = "UPDATE users SET username = $3, email = $4, email_verified = $5, \
    first_name = $6, last_name = $7, enabled = $8, password_hash = $9, password_temporary = $10, \
    roles = $11, attributes = $12 \
    WHERE realm_id = $1 AND id = $2";
pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $3, password_temporary = $4 \
    WHERE realm_id = $1 AND id = $2";
pub const DELETE: &str = "DELETE FROM users WHERE realm_id = $1 AND id = $2";

/// `UserStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_user_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::users;

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

            /// Binds the columns `INSERT` and `UPDATE` share, `username`
            /// to `attributes`, after their key (`$1`, `$2`).
            fn bind_user<'q>(q: Query<'q>, u: &'q User) -> Query<'q> {
                q.bind(&u.username)
                    .bind(&u.email)
                    .bind(u.email_verified)
                    .bind(&u.first_name)
                    .bind(&u.last_name)
                    .bind(u.enabled)
                    .bind(&u.password_hash)
                    .bind(u.password_temporary)
                    .bind(to_json(&u.roles))
                    .bind(to_json(&u.attributes))
            }

            #[$crate::__async_trait]
            impl $crate::UserStore for $ty {
                async fn create_user(&self, u: &User) -> Result<()> {
                    let u = u.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            let key = ::sqlx::query(users::INSERT).bind(&u.id).bind(&u.realm_id);
                            execute(bind_user(key, &u).bind(u.created_at), c).await
                        })
                    })
                    .await
                }
                async fn user(&self, realm_id: &str, id: &str) -> Result<Option<User>> {
                    let q = ::sqlx::query(users::BY_ID).bind(realm_id).bind(id);
                    optional(q, self.reader(), user).await
                }
                async fn user_by_username(
                    &self,
                    realm_id: &str,
                    username: &str,
                ) -> Result<Option<User>> {
                    let q = ::sqlx::query(users::BY_USERNAME)
                        .bind(realm_id)
                        .bind(username);
                    optional(q, self.reader(), user).await
                }
                async fn list_users(&self, realm_id: &str, q: &UserQuery) -> Result<Vec<User>> {
                    // Each filter fills one of its exact/LIKE pair; the
                    // other binds NULL (see `users::SEARCH`).
                    let like = |v: &Option<String>| v.as_deref().map($crate::sql::like_pattern);
                    let exact = |v: &Option<String>| v.as_ref().map(|s| s.to_lowercase());
                    let (user_exact, user_like) = if q.exact {
                        (exact(&q.username), None)
                    } else {
                        (None, like(&q.username))
                    };
                    let (email_exact, email_like) = if q.exact {
                        (exact(&q.email), None)
                    } else {
                        (None, like(&q.email))
                    };
                    let search = ::sqlx::query(users::SEARCH)
                        .bind(realm_id)
                        .bind(like(&q.search))
                        .bind(user_exact)
                        .bind(user_like)
                        .bind(email_exact)
                        .bind(email_like)
                        .bind(q.max.max(0))
                        .bind(q.first.max(0));
                    all(search, self.reader(), user).await
                }
                async fn count_users(&self, realm_id: &str) -> Result<i64> {
                    let q = ::sqlx::query(users::COUNT).bind(realm_id);
                    one(q, self.reader(), |r| col(r, "n")).await
                }
                async fn update_user(&self, u: &User) -> Result<()> {
                    let u = u.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            let key = ::sqlx::query(users::UPDATE).bind(&u.realm_id).bind(&u.id);
                            one_row(affected(bind_user(key, &u), c).await?)
                        })
                    })
                    .await
                }
                async fn set_password(
                    &self,
                    realm_id: &str,
                    id: &str,
                    hash: &str,
                    temporary: bool,
                ) -> Result<()> {
                    let (realm_id, id, hash) =
                        (realm_id.to_owned(), id.to_owned(), hash.to_owned());
                    self.write(move |c| {
                        Box::pin(async move {
                            let q = ::sqlx::query(users::SET_PASSWORD)
                                .bind(&realm_id)
                                .bind(&id)
                                .bind(&hash)
                                .bind(temporary);
                            one_row(affected(q, c).await?)
                        })
                    })
                    .await
                }
                async fn delete_user(&self, realm_id: &str, id: &str) -> Result<()> {
                    let (realm_id, id) = (realm_id.to_owned(), id.to_owned());
                    self.write(move |c| {
                        Box::pin(async move {
                            let q = ::sqlx::query(users::DELETE).bind(&realm_id).bind(&id);
                            one_row(affected(q, c).await?)
                        })
                    })
                    .await
                }
            }
        };
    };
}
