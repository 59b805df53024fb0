//! Authorization code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636). A code
//! is redeemed once; presenting it again revokes the session the first
//! redemption created (RFC 6749 §4.1.2).

use crate::browser::authorize::{s256, valid_verifier};
use crate::issue::{new_refresh_token, new_session, Issue};
use crate::{TokenEndpoint, TokenResponse};
use subtle::ConstantTimeEq;
use tessera_core::scope::ScopeSet;
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, Realm, Secret, Session, TokenHash};
use tessera_store::{ClientMeta, Redeemed};

#[derive(Debug)]
pub struct AuthCodeRequest {
    pub code: Secret<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

impl TokenEndpoint {
    pub(crate) async fn authorization_code_grant(
        &self,
        realm: &Realm,
        client: &Client,
        req: AuthCodeRequest,
        meta: &ClientMeta,
    ) -> Result<TokenResponse, OAuthError> {
        let bad = || OAuthError::invalid_grant("Code not valid");
        let hash = TokenHash::of(req.code.expose());
        let code = self
            .browser_db
            .auth_code(&hash)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|c| c.realm_id == realm.id)
            .ok_or_else(bad)?;
        if code.client_id != client.id {
            return Err(bad().with_debug("code was issued to another client"));
        }
        let now = now_ms();
        if code.spent_at.is_some() {
            return Err(self.code_replayed(&code.session_id).await);
        }
        if code.expires_at <= now {
            return Err(OAuthError::invalid_grant("Code expired"));
        }
        if req.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant("Incorrect redirect_uri"));
        }
        match (&code.code_challenge, &req.code_verifier) {
            (Some(challenge), Some(verifier)) => {
                let ok = valid_verifier(verifier)
                    && bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes()));
                if !ok {
                    return Err(OAuthError::invalid_grant("PKCE verification failed"));
                }
            }
            (Some(_), None) => {
                return Err(OAuthError::invalid_grant(
                    "PKCE verification failed: code_verifier is missing",
                ))
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "PKCE verification failed: the authorization request had no code_challenge",
                ))
            }
            (None, None) => {}
        }
        let user = self
            .user_db
            .user(&realm.id, &code.user_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|u| u.enabled)
            .ok_or_else(|| OAuthError::invalid_grant("User not found or disabled"))?;
        let sso_live = self
            .browser_db
            .sso_session(&code.sso_session_id)
            .await
            .map_err(OAuthError::server_error)?
            .is_some_and(|s| s.is_active(now));
        if !sso_live {
            return Err(OAuthError::invalid_grant("Session not active"));
        }
        let session = Session {
            id: code.session_id.clone(),
            sso_session_id: Some(code.sso_session_id.clone()),
            auth_time: code.auth_time,
            ..new_session(realm, &user, client, code.scope.clone(), meta, now)
        };
        let refresh = new_refresh_token(&session, now);
        match self
            .browser_db
            .redeem_auth_code(&hash, now, &session, &refresh.record)
            .await
            .map_err(OAuthError::server_error)?
        {
            Redeemed::Created => {}
            Redeemed::AlreadySpent { session_id } => {
                return Err(self.code_replayed(&session_id).await)
            }
            // The browser signed out between the check above and now.
            Redeemed::Gone => return Err(OAuthError::invalid_grant("Session not active")),
        }
        let scope = ScopeSet::from_stored(&code.scope);
        self.minter
            .token_response(Issue {
                nonce: code.nonce.clone(),
                ..Issue::for_user(realm, client, &user, &session, &refresh, &scope)
            })
            .await
    }

    /// A spent code came back: whoever holds it now may have stolen it, so
    /// everything the first redemption produced is revoked.
    async fn code_replayed(&self, session_id: &str) -> OAuthError {
        tracing::warn!(session = %session_id, "authorization code replayed; its session is revoked");
        if let Err(e) = self.sessions.end_session(session_id).await {
            return e;
        }
        OAuthError::invalid_grant("Code already used")
    }
}
