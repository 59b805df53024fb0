//! Client authentication at the token, revocation, introspection and logout
//! endpoints: `client_secret_basic`, `client_secret_post`, and public clients
//! identified by `client_id` alone.

use crate::keyring::KeyCache;
use crate::params::Params;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::sync::Arc;
use tessera_core::{Client, OAuthError, Realm, Secret};
use tessera_store::ClientStore;

/// Who the calling client says it is: `client_secret_basic`,
/// `client_secret_post`, or a public client's bare `client_id` (Keycloak's
/// "client-secret" authenticator takes either secret method, so the method
/// itself is not kept). Read in one place: `ClientAuth::calling_client`.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<Secret<String>>,
}

const BAD_CREDENTIALS: &str = "Invalid client or Invalid client credentials";

impl ClientCredentials {
    /// Reads credentials from the `Authorization` header and the form. Using
    /// two methods at once is `invalid_request` (RFC 6749 §2.3).
    pub(crate) fn extract(
        authorization: Option<&str>,
        params: &Params,
    ) -> Result<Self, OAuthError> {
        let basic = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, creds)| parse_basic(creds))
            .transpose()?;
        let form_secret = params.get("client_secret");
        match basic {
            Some((id, secret)) => {
                if form_secret.is_some() {
                    return Err(OAuthError::invalid_request(
                        "client authenticated with more than one method",
                    ));
                }
                if params.get("client_id").is_some_and(|form_id| form_id != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id does not match the Authorization header",
                    ));
                }
                Ok(Self {
                    client_id: id,
                    secret: Some(Secret::new(secret)),
                })
            }
            None => {
                let client_id = params.get("client_id").ok_or_else(|| {
                    OAuthError::invalid_client("client authentication required (client_id)")
                })?;
                Ok(Self {
                    client_id: client_id.to_string(),
                    secret: form_secret.map(|s| Secret::new(s.to_string())),
                })
            }
        }
    }
}

/// RFC 6749 §2.3.1: id and secret are form-url-encoded before base64.
fn parse_basic(encoded: &str) -> Result<(String, String), OAuthError> {
    let bad = || OAuthError::invalid_client("malformed Basic authorization header");
    let raw = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| -> Result<String, OAuthError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&format!("v={s}")).map_err(|_| bad())?;
        Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
    };
    Ok((decode(id)?, decode(secret)?))
}

/// Client authentication for every form-posted endpoint.
#[derive(Clone)]
pub struct ClientAuth {
    pub(crate) client_db: Arc<dyn ClientStore>,
    pub(crate) keys: Arc<KeyCache>,
}

impl ClientAuth {
    /// The calling client of a form-posted request (token, device
    /// authorization, introspection, revocation, logout by refresh token):
    /// its credentials read from the `Authorization` header or the form, then
    /// checked. The one place client authentication happens.
    pub async fn calling_client(
        &self,
        realm: &Realm,
        authorization: Option<&str>,
        params: &Params,
    ) -> Result<Client, OAuthError> {
        let creds = ClientCredentials::extract(authorization, params)?;
        self.authenticate_client(realm, &creds).await
    }

    /// Authenticates the client. Every failure is the same `invalid_client`
    /// so callers cannot tell an unknown client from a wrong secret.
    async fn authenticate_client(
        &self,
        realm: &Realm,
        creds: &ClientCredentials,
    ) -> Result<Client, OAuthError> {
        let client = self
            .client_db
            .client_by_client_id(&realm.id, &creds.client_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|c| c.enabled)
            .ok_or_else(|| OAuthError::invalid_client(BAD_CREDENTIALS))?;
        if client.public_client {
            return Ok(client);
        }
        let (Some(hash), Some(secret)) = (&client.secret_hash, &creds.secret) else {
            return Err(OAuthError::invalid_client(BAD_CREDENTIALS));
        };
        if !hash.matches(secret.expose()) {
            return Err(OAuthError::invalid_client(BAD_CREDENTIALS));
        }
        Ok(client)
    }

    /// The secret the server generated for `client` at its current
    /// generation. Only the hash is stored; this derivation lets the Admin API
    /// show it again, as Keycloak's `GET .../client-secret` does.
    pub fn generated_client_secret(&self, client: &Client) -> String {
        self.keys.master().derive_secret(&format!(
            "client-secret:{}:{}",
            client.id, client.secret_generation
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> Params {
        Params::parse(s.as_bytes()).expect("form")
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20app:p%40ss%3Aword"));
        let c =
            ClientCredentials::extract(Some(&header.replacen("Basic", "BASIC", 1)), &params(""))
                .expect("basic");
        assert_eq!(c.client_id, "my app");
        assert_eq!(c.secret.expect("secret").expose(), "p@ss:word");
    }

    #[test]
    fn two_methods_or_mismatched_ids_are_rejected() {
        let header = format!("Basic {}", STANDARD.encode("app:secret"));
        assert!(ClientCredentials::extract(Some(&header), &params("client_secret=x")).is_err());
        assert!(ClientCredentials::extract(Some(&header), &params("client_id=other")).is_err());
        assert!(ClientCredentials::extract(Some("Basic !!!"), &params("")).is_err());
        assert!(ClientCredentials::extract(None, &params("")).is_err());
        let post =
            ClientCredentials::extract(None, &params("client_id=a&client_secret=b")).expect("post");
        assert!(post.secret.is_some());
        let public = ClientCredentials::extract(None, &params("client_id=a")).expect("public");
        assert!(public.secret.is_none());
    }
}
