//! Refresh token grant (RFC 6749 §6) with rotation: every use spends the token
//! and returns a new one in the same commit. A spent token presented again
//! within the grace window gets the same successor back while that is unused
//! (a retry after a lost answer: `rotation.rs`), else it is refused; after
//! the window it revokes the whole session (reuse detection).

use crate::issue::Issue;
use crate::rotation::Rotated;
use crate::{TokenEndpoint, TokenResponse};
use tessera_core::scope::ScopeSet;
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, Realm, Secret, TokenHash};
use tessera_store::ClientMeta;

#[derive(Debug)]
pub struct RefreshRequest {
    pub refresh_token: Secret<String>,
    pub scope: Option<String>,
}

const INVALID: &str = "Invalid refresh token";

impl TokenEndpoint {
    pub(crate) async fn refresh_grant(
        &self,
        realm: &Realm,
        client: &Client,
        req: RefreshRequest,
        meta: &ClientMeta,
    ) -> Result<TokenResponse, OAuthError> {
        let hash = TokenHash::of(req.refresh_token.expose());
        let store_err = OAuthError::server_error;
        // Check ownership and scope before spending anything, so a bad
        // request changes nothing.
        let (_, session) = self
            .refresh_db
            .refresh_token_with_session(&hash)
            .await
            .map_err(store_err)?
            .ok_or_else(|| OAuthError::invalid_grant(INVALID))?;
        // Consent sessions renew through the consent API only: their tokens
        // never become OAuth access tokens.
        if session.realm_id != realm.id
            || session.client_id != client.id
            || session.context_name.is_some()
        {
            return Err(
                OAuthError::invalid_grant(INVALID).with_debug("token belongs to another client")
            );
        }
        let scope = ScopeSet::from_stored(&session.scope).narrow(req.scope.as_deref())?;
        let user = self
            .user_db
            .user(&realm.id, &session.user_id)
            .await
            .map_err(store_err)?
            .filter(|u| u.enabled)
            .ok_or_else(|| OAuthError::invalid_grant("User not found or disabled"))?;

        let now = now_ms();
        match self
            .rotation
            .rotate(
                req.refresh_token.expose(),
                &session,
                session.expires_at,
                now,
                meta,
            )
            .await
            .map_err(store_err)?
        {
            Rotated::Successor { next, session } => {
                self.minter
                    .token_response(Issue::for_user(
                        realm, client, &user, &session, &next, &scope,
                    ))
                    .await
            }
            Rotated::Spent {
                session_id,
                rotated_at,
            } => {
                if self
                    .sessions
                    .refresh_token_reused(&session_id, rotated_at)
                    .await?
                {
                    Err(OAuthError::invalid_grant(
                        "Refresh token reused; session revoked",
                    ))
                } else {
                    Err(OAuthError::invalid_grant("Refresh token already used"))
                }
            }
            Rotated::Unknown => Err(OAuthError::invalid_grant(INVALID)),
            Rotated::Inactive => Err(OAuthError::invalid_grant("Session not active")),
        }
    }
}
