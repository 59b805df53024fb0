//! Client credentials grant (RFC 6749 §4.4): a confidential client with
//! service accounts enabled acts as itself. Stateless: no session and no
//! refresh token (Keycloak's default), so it costs one key signature.

use crate::issue::{Issue, Subject};
use crate::{TokenEndpoint, TokenResponse};
use tessera_core::scope::ScopeSet;
use tessera_core::{Client, OAuthError, Realm};

impl TokenEndpoint {
    pub(crate) async fn client_credentials_grant(
        &self,
        realm: &Realm,
        client: &Client,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let scope = ScopeSet::parse_requested(scope)?;
        self.minter
            .token_response(Issue {
                realm,
                client,
                subject: Subject::ServiceAccount(client),
                session: None,
                refresh: None,
                scope: &scope,
                nonce: None,
            })
            .await
    }
}
