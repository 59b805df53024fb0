//! What the account page and `/account/sessions` do for the signed-in user:
//! list their sessions (browsers and app connections), sign one or all out,
//! and change the password.

use super::BrowserSignIn;
use serde::Serialize;
use std::collections::HashMap;
use tessera_core::time::now_ms;
use tessera_core::{OAuthError, Realm, Secret, User};

/// One entry of the sessions list.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AccountSession {
    pub id: String,
    /// `"browser"` (a signed-in browser) or `"app"` (an app connection).
    pub kind: &'static str,
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub device_id: Option<String>,
    pub context_name: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// Milliseconds since the epoch.
    pub started: i64,
    pub last_access: i64,
    pub expires: i64,
    /// The browser (or the app session) this request came from.
    pub current: bool,
}

/// The shortest password the account page accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

impl BrowserSignIn {
    /// The user's live sessions: browsers first, then app connections, each
    /// newest first. `current` marks the caller's own session.
    pub async fn account_sessions(
        &self,
        realm: &Realm,
        user_id: &str,
        current: Option<&str>,
    ) -> Result<Vec<AccountSession>, OAuthError> {
        let now = now_ms();
        let store_err = OAuthError::server_error;
        let browsers = self
            .browser_db
            .user_sso_sessions(&realm.id, user_id, now)
            .await
            .map_err(store_err)?;
        let apps = self
            .session_db
            .user_sessions(&realm.id, user_id, now)
            .await
            .map_err(store_err)?;
        let mut clients = HashMap::new();
        for s in &apps {
            if !clients.contains_key(&s.client_id) {
                let c = self
                    .client_db
                    .client(&realm.id, &s.client_id)
                    .await
                    .map_err(store_err)?;
                clients.insert(s.client_id.clone(), c);
            }
        }
        let mut out: Vec<AccountSession> = browsers
            .into_iter()
            .map(|b| AccountSession {
                current: current == Some(b.id.as_str()),
                id: b.id,
                kind: "browser",
                client_id: None,
                client_name: None,
                device_id: None,
                context_name: None,
                ip_address: b.ip,
                user_agent: b.user_agent,
                started: b.created_at,
                last_access: b.last_used_at,
                expires: b.expires_at,
            })
            .collect();
        out.extend(apps.into_iter().map(|s| {
            let client = clients.get(&s.client_id).and_then(|c| c.as_ref());
            AccountSession {
                current: current == Some(s.id.as_str()),
                kind: "app",
                client_id: client.map(|c| c.client_id.clone()),
                client_name: client.map(|c| c.name.clone().unwrap_or_else(|| c.client_id.clone())),
                device_id: s.device_id,
                context_name: s.context_name,
                ip_address: s.ip,
                user_agent: s.user_agent,
                started: s.created_at,
                last_access: s.last_used_at,
                expires: s.expires_at,
                id: s.id,
            }
        }));
        Ok(out)
    }

    /// Signs out one of the user's sessions (a browser ends with the app
    /// sessions it started). False if the user has no such live session.
    pub async fn end_account_session(
        &self,
        realm: &Realm,
        user_id: &str,
        id: &str,
    ) -> Result<bool, OAuthError> {
        let store_err = OAuthError::server_error;
        if let Some(sso) = self.browser_db.sso_session(id).await.map_err(store_err)? {
            if sso.realm_id == realm.id && sso.user_id == user_id {
                return self.end_sso_session(id).await;
            }
            return Ok(false);
        }
        match self.session_db.session(id).await.map_err(store_err)? {
            Some(s) if s.realm_id == realm.id && s.user_id == user_id => {
                self.sessions.end_session(id).await
            }
            _ => Ok(false),
        }
    }

    /// Changes the user's password after checking the current one (with the
    /// same throttle as a login). With `sign_out_others`, every session but
    /// the browser `keep` ends.
    pub async fn change_password(
        &self,
        realm: &Realm,
        user: &User,
        current: &Secret<String>,
        new: &Secret<String>,
        sign_out_others: Option<&str>,
    ) -> Result<(), OAuthError> {
        self.login
            .check_password(realm, &user.username, current, None)
            .await?;
        let new_len = new.expose().chars().count();
        if new_len < MIN_PASSWORD_LEN {
            return Err(OAuthError::invalid_request(format!(
                "The new password must have at least {MIN_PASSWORD_LEN} characters."
            )));
        }
        if new.expose().eq_ignore_ascii_case(&user.username) {
            return Err(OAuthError::invalid_request(
                "The new password must not be your username.",
            ));
        }
        // Only the password: an administrator's edits made meanwhile stay.
        let hash = self.passwords.hash(new).await?;
        self.user_db
            .set_password(&realm.id, &user.id, &hash, false)
            .await
            .map_err(OAuthError::server_error)?;
        tracing::info!(realm = %realm.name, user = %user.id, "password changed by its user");
        if let Some(keep) = sign_out_others {
            let now = now_ms();
            let browsers = self
                .browser_db
                .user_sso_sessions(&realm.id, &user.id, now)
                .await
                .map_err(OAuthError::server_error)?;
            for b in browsers.iter().filter(|b| b.id != keep) {
                self.end_sso_session(&b.id).await?;
            }
            let apps = self
                .session_db
                .user_sessions(&realm.id, &user.id, now)
                .await
                .map_err(OAuthError::server_error)?;
            for s in apps
                .iter()
                .filter(|s| s.sso_session_id.as_deref() != Some(keep))
            {
                self.sessions.end_session(&s.id).await?;
            }
        }
        Ok(())
    }
}
