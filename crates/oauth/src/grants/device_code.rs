//! Device code grant (RFC 8628 §3.4): the client polls until a person has
//! approved or denied the code on the verification page; an approved code
//! yields tokens exactly once.

use crate::issue::{new_refresh_token, new_session, Issue};
use crate::{TokenEndpoint, TokenResponse};
use tessera_core::scope::ScopeSet;
use tessera_core::time::now_ms;
use tessera_core::{
    Client, DeviceStatus, OAuthError, OAuthErrorCode, Realm, Secret, Session, TokenHash,
};
use tessera_store::{ClientMeta, Redeemed};

impl TokenEndpoint {
    pub(crate) async fn device_code_grant(
        &self,
        realm: &Realm,
        client: &Client,
        device_code: Secret<String>,
        meta: &ClientMeta,
    ) -> Result<TokenResponse, OAuthError> {
        let bad = || OAuthError::invalid_grant("Device code not valid");
        let hash = TokenHash::of(device_code.expose());
        let code = self
            .browser_db
            .device_code(&hash)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|c| c.realm_id == realm.id)
            .ok_or_else(bad)?;
        if code.client_id != client.id {
            return Err(bad().with_debug("device code was issued to another client"));
        }
        if code.spent_at.is_some() {
            return Err(OAuthError::invalid_grant("Device code already used"));
        }
        let now = now_ms();
        if code.expires_at <= now {
            return Err(OAuthError::new(
                OAuthErrorCode::ExpiredToken,
                "Device code expired",
            ));
        }
        let on_time = self
            .browser_db
            .record_device_poll(&hash, now)
            .await
            .map_err(OAuthError::server_error)?;
        if !on_time {
            return Err(OAuthError::new(
                OAuthErrorCode::SlowDown,
                format!(
                    "Polling too fast: wait at least {} seconds between requests",
                    code.interval_secs + 5
                ),
            ));
        }
        let user_id = match code.status {
            DeviceStatus::Pending => {
                return Err(OAuthError::new(
                    OAuthErrorCode::AuthorizationPending,
                    "The user has not yet approved the request",
                ))
            }
            DeviceStatus::Denied => {
                return Err(OAuthError::new(
                    OAuthErrorCode::AccessDenied,
                    "The user denied the request",
                ))
            }
            DeviceStatus::Approved => code.user_id.clone().ok_or_else(bad)?,
        };
        let user = self
            .user_db
            .user(&realm.id, &user_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|u| u.enabled)
            .ok_or_else(|| OAuthError::invalid_grant("User not found or disabled"))?;
        // The browser approved; the device signs in on its own, so signing
        // that browser out does not sign the device out (no SSO session).
        let session = Session {
            id: code.session_id.clone(),
            auth_time: code.auth_time.unwrap_or(now),
            ..new_session(realm, &user, client, code.scope.clone(), meta, now)
        };
        let refresh = new_refresh_token(&session, now);
        match self
            .browser_db
            .redeem_device_code(&hash, now, &session, &refresh.record)
            .await
            .map_err(OAuthError::server_error)?
        {
            Redeemed::Created => {}
            Redeemed::AlreadySpent { .. } => {
                return Err(OAuthError::invalid_grant("Device code already used"))
            }
            Redeemed::Gone => return Err(bad()),
        }
        let scope = ScopeSet::from_stored(&code.scope);
        self.minter
            .token_response(Issue::for_user(
                realm, client, &user, &session, &refresh, &scope,
            ))
            .await
    }
}
