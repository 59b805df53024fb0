//! OAuth clients of a realm, addressed by id or by their `client_id`.

pub const INSERT: &str = "INSERT INTO clients (id, realm_id, client_id, name, enabled, \
    public_client, secret_hash, secret_generation, secret_generated, redirect_uris, web_origins, \
    standard_flow_enabled, direct_access_grants_enabled, service_accounts_enabled, attributes, \
    created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
pub const BY_ID: &str = "SELECT * FROM clients WHERE realm_id = $1 AND id = $2";
pub const BY_CLIENT_ID: &str = "SELECT * FROM clients WHERE realm_id = $1 AND client_id = $2";
pub const IN_REALM: &str = "SELECT * FROM clients WHERE realm_id = $1 ORDER BY client_id";
/// Rewrites everything but the key (`$1`, `$2`) and `created_at`.
pub const UPDATE: &str = "UPDATE clients SET client_id = $3, name = $4, enabled = $5, \
    public_client = $6, secret_hash = $7, secret_generation = $8, secret_generated = $9, \
    redirect_uris = $10, web_origins = $11, standard_flow_enabled = $12, \
    direct_access_grants_enabled = $13, service_accounts_enabled = $14, attributes = $15 \
    WHERE realm_id = $1 AND id = $2";
pub const DELETE: &str = "DELETE FROM clients WHERE realm_id = $1 AND id = $2";

/// `ClientStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_client_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::clients;

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

            /// Binds the columns `INSERT` and `UPDATE` share, `client_id`
            /// to `attributes`, after their key (`$1`, `$2`).
            fn bind_client<'q>(q: Query<'q>, c: &'q Client) -> Query<'q> {
                q.bind(&c.client_id)
                    .bind(&c.name)
                    .bind(c.enabled)
                    .bind(c.public_client)
                    .bind(c.secret_hash.as_ref().map(|h| h.as_str().to_string()))
                    .bind(c.secret_generation)
                    .bind(c.secret_generated)
                    .bind(to_json(&c.redirect_uris))
                    .bind(to_json(&c.web_origins))
                    .bind(c.standard_flow_enabled)
                    .bind(c.direct_access_grants_enabled)
                    .bind(c.service_accounts_enabled)
                    .bind(to_json(&c.attributes))
            }

            #[$crate::__async_trait]
            impl $crate::ClientStore for $ty {
                async fn create_client(&self, client: &Client) -> Result<()> {
                    let cl = client.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            let key = ::sqlx::query(clients::INSERT)
                                .bind(&cl.id)
                                .bind(&cl.realm_id);
                            execute(bind_client(key, &cl).bind(cl.created_at), c).await
                        })
                    })
                    .await
                }
                async fn client(&self, realm_id: &str, id: &str) -> Result<Option<Client>> {
                    let q = ::sqlx::query(clients::BY_ID).bind(realm_id).bind(id);
                    optional(q, self.reader(), client).await
                }
                async fn client_by_client_id(
                    &self,
                    realm_id: &str,
                    client_id: &str,
                ) -> Result<Option<Client>> {
                    let q = ::sqlx::query(clients::BY_CLIENT_ID)
                        .bind(realm_id)
                        .bind(client_id);
                    optional(q, self.reader(), client).await
                }
                async fn list_clients(&self, realm_id: &str) -> Result<Vec<Client>> {
                    let q = ::sqlx::query(clients::IN_REALM).bind(realm_id);
                    all(q, self.reader(), client).await
                }
                async fn update_client(&self, client: &Client) -> Result<()> {
                    let cl = client.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            let key = ::sqlx::query(clients::UPDATE)
                                .bind(&cl.realm_id)
                                .bind(&cl.id);
                            one_row(affected(bind_client(key, &cl), c).await?)
                        })
                    })
                    .await
                }
                async fn delete_client(&self, realm_id: &str, id: &str) -> Result<()> {
                    let (realm_id, id) = (realm_id.to_owned(), id.to_owned());
                    self.write(move |c| {
                        Box::pin(async move {
                            let q = ::sqlx::query(clients::DELETE).bind(&realm_id).bind(&id);
                            one_row(affected(q, c).await?)
                        })
                    })
                    .await
                }
            }
        };
    };
}
