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

            #[$crate::__async_trait]
            impl $crate::ClientStore for $ty {
                async fn create_client(&self, c: &Client) -> Result<()> {
                    ::sqlx::query(clients::INSERT)
                        .bind(&c.id)
                        .bind(&c.realm_id)
                        .bind(&c.client_id)
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
                        .bind(c.created_at)
                        .execute(self.writer())
                        .await
                        .map_err(err)?;
                    Ok(())
                }
                async fn client(&self, realm_id: &str, id: &str) -> Result<Option<Client>> {
                    ::sqlx::query(clients::BY_ID)
                        .bind(realm_id)
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(err)?
                        .as_ref()
                        .map(client)
                        .transpose()
                }
                async fn client_by_client_id(
                    &self,
                    realm_id: &str,
                    client_id: &str,
                ) -> Result<Option<Client>> {
                    ::sqlx::query(clients::BY_CLIENT_ID)
                        .bind(realm_id)
                        .bind(client_id)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(err)?
                        .as_ref()
                        .map(client)
                        .transpose()
                }
                async fn list_clients(&self, realm_id: &str) -> Result<Vec<Client>> {
                    ::sqlx::query(clients::IN_REALM)
                        .bind(realm_id)
                        .fetch_all(self.reader())
                        .await
                        .map_err(err)?
                        .iter()
                        .map(client)
                        .collect()
                }
                async fn update_client(&self, c: &Client) -> Result<()> {
                    let done = ::sqlx::query(clients::UPDATE)
                        .bind(&c.realm_id)
                        .bind(&c.id)
                        .bind(&c.client_id)
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
                        .execute(self.writer())
                        .await
                        .map_err(err)?;
                    one_row(done.rows_affected())
                }
                async fn delete_client(&self, realm_id: &str, id: &str) -> Result<()> {
                    let done = ::sqlx::query(clients::DELETE)
                        .bind(realm_id)
                        .bind(id)
                        .execute(self.writer())
                        .await
                        .map_err(err)?;
                    one_row(done.rows_affected())
                }
            }
        };
    };
}
