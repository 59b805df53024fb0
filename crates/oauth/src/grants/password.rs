//! Resource owner password credentials grant (RFC 6749 §4.3): what cwctl and
//! Che's CLI examples use. Throttled per username, constant-time for unknown users.

use crate::issue::{new_refresh_token, Issue, Subject};
use crate::{TokenResponse, TokenService};
use tessera_core::scope::ScopeSet;
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, OAuthErrorCode, Realm, Secret, Session};
use tessera_store::ClientMeta;

#[derive(Debug)]
pub struct PasswordRequest {
    pub username: String,
    pub password: Secret<String>,
    pub scope: Option<String>,
    /// Optional device identifier recorded on the session.
    pub device_id: Option<String>,
}

const BAD_CREDENTIALS: &str = "Invalid user credentials";

impl TokenService {
    pub(crate) async fn password_grant(
        &self,
        realm: &Realm,
        client: &Client,
        req: PasswordRequest,
        meta: &ClientMeta,
    ) -> Result<TokenResponse, OAuthError> {
        let scope = ScopeSet::parse_requested(req.scope.as_deref())?;
        let username = req.username.to_lowercase();
        let attempt = self
            .throttle
            .begin(&realm.id, &username)
            .map_err(OAuthError::too_many_requests)?;
        let user = match self.store.user_by_username(&realm.id, &username).await {
            Ok(u) => u,
            Err(e) => {
                attempt.not_counted();
                return Err(OAuthError::server_error(e));
            }
        };
        let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let verified = match self.passwords.verify(hash, &req.password).await {
            Ok(v) => v,
            Err(e) => {
                attempt.not_counted();
                return Err(e);
            }
        };
        let user = match user {
            Some(u) if verified && u.enabled => u,
            _ => {
                attempt.failed();
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidUserCredentials,
                    BAD_CREDENTIALS,
                ));
            }
        };
        attempt.succeeded();
        if user.password_temporary {
            return Err(OAuthError::invalid_grant("Account is not fully set up"));
        }
        let now = now_ms();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            realm_id: realm.id.clone(),
            user_id: user.id.clone(),
            client_id: client.id.clone(),
            device_id: req.device_id,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            context_name: None,
            origin: None,
            scope: scope.to_param(),
            auth_time: now,
            created_at: now,
            last_used_at: now,
            expires_at: now + realm.session_max_lifespan_secs * 1000,
            revoked_at: None,
        };
        let refresh = new_refresh_token(&session, now);
        self.store
            .create_session(&session, &refresh.record)
            .await
            .map_err(OAuthError::server_error)?;
        self.token_response(Issue {
            realm,
            client,
            subject: Subject::User(&user),
            session: Some(&session),
            refresh: Some(&refresh),
            scope: &scope,
            nonce: None,
        })
        .await
    }
}
