//! Resource owner password credentials grant (RFC 6749 §4.3): what cwctl and
//! Che's CLI examples use. Throttled per username, constant-time for unknown users.

use crate::issue::{new_refresh_token, new_session, Issue};
use crate::{TokenEndpoint, TokenResponse};
use tessera_core::scope::ScopeSet;
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, Realm, Secret, Session};
use tessera_store::ClientMeta;

#[derive(Debug)]
pub struct PasswordRequest {
    pub username: String,
    pub password: Secret<String>,
    pub scope: Option<String>,
    /// Optional device identifier recorded on the session.
    pub device_id: Option<String>,
}

impl TokenEndpoint {
    pub(crate) async fn password_grant(
        &self,
        realm: &Realm,
        client: &Client,
        req: PasswordRequest,
        meta: &ClientMeta,
    ) -> Result<TokenResponse, OAuthError> {
        let scope = ScopeSet::parse_requested(req.scope.as_deref())?;
        let user = self
            .login
            .check_password(realm, &req.username, &req.password, meta.ip.as_deref())
            .await?;
        if user.password_temporary {
            return Err(OAuthError::invalid_grant("Account is not fully set up"));
        }
        let now = now_ms();
        let session = Session {
            device_id: req.device_id,
            ..new_session(realm, &user, client, scope.to_param(), meta, now)
        };
        let refresh = new_refresh_token(&session, now);
        self.session_db
            .create_session(&session, &refresh.record)
            .await
            .map_err(OAuthError::server_error)?;
        self.minter
            .token_response(Issue::for_user(
                realm, client, &user, &session, &refresh, &scope,
            ))
            .await
    }
}
