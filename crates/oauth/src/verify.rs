//! Verifying this server's own access tokens (userinfo, introspection,
//! revocation, the Admin API): signature with the realm's cached keys,
//! issuer, expiry and token kind, then that the session is still alive.

use crate::TokenService;
use tessera_core::claims::{AccessClaims, TYP_ACCESS};
use tessera_core::time::{now_ms, now_secs};
use tessera_core::{OAuthError, Realm, Session};
use tessera_keys::{decode_unverified_header, verify_compact};

/// Seconds of clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_SECS: i64 = 5;

impl TokenService {
    /// Checks signature, `iss`, `typ`, `exp` and `iat`. Does not look at the session.
    pub async fn verify_access_token(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<AccessClaims, OAuthError> {
        let invalid = || OAuthError::invalid_token("Token verification failed");
        let header = decode_unverified_header(token).map_err(|_| invalid())?;
        let kid = header.kid.ok_or_else(invalid)?;
        if header.kind.is_some() {
            return Err(invalid().with_debug("token has a kind header (not an access token)"));
        }
        let key = self.keys.verifier(realm, &kid).await?.ok_or_else(invalid)?;
        let value = verify_compact(token, &key).map_err(|e| invalid().with_debug(e))?;
        let claims: AccessClaims =
            serde_json::from_value(value).map_err(|e| invalid().with_debug(e))?;
        if claims.typ != TYP_ACCESS {
            return Err(invalid().with_debug(format!("typ {} is not an access token", claims.typ)));
        }
        if claims.iss != self.issuer(&realm.name) {
            return Err(invalid().with_debug("issuer mismatch"));
        }
        let now = now_secs();
        if claims.exp + LEEWAY_SECS <= now {
            return Err(OAuthError::invalid_token("Token is expired"));
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(invalid().with_debug("issued in the future"));
        }
        Ok(claims)
    }

    /// Verifies the token and, when it belongs to a session, that the session
    /// is still active (so logout and revocation take effect at once).
    pub async fn verify_live_access_token(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<(AccessClaims, Option<Session>), OAuthError> {
        let claims = self.verify_access_token(realm, token).await?;
        let session = match &claims.sid {
            Some(sid) => Some(
                self.live_session(realm, sid)
                    .await?
                    .ok_or_else(|| OAuthError::invalid_token("Session not active"))?,
            ),
            None => {
                // No session to end (client_credentials): the client itself
                // must still exist and be enabled.
                self.store
                    .client_by_client_id(&realm.id, &claims.azp)
                    .await
                    .map_err(OAuthError::server_error)?
                    .filter(|c| c.enabled)
                    .ok_or_else(|| OAuthError::invalid_token("Client not found or disabled"))?;
                None
            }
        };
        Ok((claims, session))
    }

    /// The session if it is active, in `realm`, and its client is still
    /// enabled (a disabled client's tokens die everywhere at once, even
    /// before its sessions are revoked).
    pub async fn live_session(
        &self,
        realm: &Realm,
        session_id: &str,
    ) -> Result<Option<Session>, OAuthError> {
        let Some(s) = self
            .store
            .session(session_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|s| s.is_active(now_ms()) && s.realm_id == realm.id)
        else {
            return Ok(None);
        };
        let client_live = self
            .store
            .client(&realm.id, &s.client_id)
            .await
            .map_err(OAuthError::server_error)?
            .is_some_and(|c| c.enabled);
        Ok(client_live.then_some(s))
    }
}
