//! Signing in with a browser: SSO sessions (named by a cookie), the signed
//! state a login page carries, CSRF tokens, the authorization endpoint,
//! device verification, RP-initiated logout and the account operations.
//! API boundary: no HTTP types here; the `http` crate renders pages and sets
//! cookies from what these functions return.

pub mod account;
pub mod authorize;
pub mod device;
pub mod logout;

use crate::keyring::KeyCache;
use crate::password::PasswordHasher;
use crate::throttle::LoginThrottle;
use crate::{ClientAuth, OAuthConfig, PasswordCheck, Sessions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tessera_core::secret::random_token;
use tessera_core::time::{now_ms, now_secs};
use tessera_core::{OAuthError, Realm, SsoSession, TokenHash, User};
use tessera_store::ClientMeta;
use tessera_store::{BrowserStore, ClientStore, SessionStore, UserStore};

pub use authorize::{AuthorizeError, AuthorizeRequest, Redirect, ResponseMode};

/// A browser that is signed in: its SSO session and user.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub sso: SsoSession,
    pub user: User,
}

/// What a login page leads to once the user has signed in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Intent {
    /// Finish an authorization request.
    Authorize(AuthorizeRequest),
    /// Go on to the device verification page (with the code, if one was given).
    Device { user_code: Option<String> },
    /// Go on to the account page.
    Account,
}

fn csrf_binding(cookie: &str, sso_id: Option<&str>) -> String {
    format!("{cookie}\n{}", sso_id.unwrap_or(""))
}

#[derive(Serialize, Deserialize)]
struct LoginState {
    exp: i64,
    realm: String,
    intent: Intent,
}

/// Signing in with a browser, and what a signed-in browser can do.
#[derive(Clone)]
pub struct BrowserSignIn {
    pub(crate) config: Arc<OAuthConfig>,
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) client_db: Arc<dyn ClientStore>,
    pub(crate) user_db: Arc<dyn UserStore>,
    /// SSO sessions, authorization and device codes.
    pub(crate) browser_db: Arc<dyn BrowserStore>,
    pub(crate) session_db: Arc<dyn SessionStore>,
    pub(crate) passwords: Arc<PasswordHasher>,
    pub(crate) throttle: Arc<LoginThrottle>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) sessions: Sessions,
    pub(crate) login: PasswordCheck,
}

impl BrowserSignIn {
    /// The login form's check (see `PasswordCheck`).
    pub async fn check_password(
        &self,
        realm: &Realm,
        username: &str,
        password: &tessera_core::Secret<String>,
        address: Option<&str>,
    ) -> Result<User, OAuthError> {
        self.login
            .check_password(realm, username, password, address)
            .await
    }

    /// A client of the realm by `client_id` (to name it on a page).
    pub async fn client(
        &self,
        realm: &Realm,
        client_id: &str,
    ) -> Result<Option<tessera_core::Client>, OAuthError> {
        self.client_db
            .client_by_client_id(&realm.id, client_id)
            .await
            .map_err(OAuthError::server_error)
    }

    /// A session by id (live or not).
    pub async fn session(&self, id: &str) -> Result<Option<tessera_core::Session>, OAuthError> {
        self.session_db
            .session(id)
            .await
            .map_err(OAuthError::server_error)
    }

    fn browser_key(&self, purpose: &str, realm: &Realm) -> tessera_keys::MacKey {
        self.keys
            .master()
            .mac_key(&format!("browser-{purpose}/{}", realm.id))
    }

    /// Seals an intent into the hidden field of a login page: MAC'd, bound to
    /// the realm, expiring after `login_page_ttl_secs`.
    pub fn seal_intent(&self, realm: &Realm, intent: &Intent) -> String {
        self.browser_key("login", realm).sign_jwt(&LoginState {
            exp: now_secs() + self.config.browser.login_page_ttl_secs,
            realm: realm.id.clone(),
            intent: intent.clone(),
        })
    }

    /// Opens what `seal_intent` sealed; `None` if forged, for another realm
    /// or expired.
    pub fn open_intent(&self, realm: &Realm, sealed: &str) -> Option<Intent> {
        let value = self.browser_key("login", realm).verify_jwt(sealed).ok()?;
        let state: LoginState = serde_json::from_value(value).ok()?;
        (state.realm == realm.id && state.exp > now_secs()).then_some(state.intent)
    }

    /// The CSRF token for a browser: bound to its CSRF cookie and, on pages
    /// of a signed-in browser, to its SSO session (so a cookie planted by
    /// someone else yields no token that works for the victim's sign-in).
    pub fn csrf_token(&self, realm: &Realm, cookie: &str, sso_id: Option<&str>) -> String {
        self.browser_key("csrf", realm)
            .tag(csrf_binding(cookie, sso_id).as_bytes())
    }

    /// Whether `token` was made for this browser's CSRF cookie (and SSO session).
    pub fn check_csrf(
        &self,
        realm: &Realm,
        cookie: Option<&str>,
        sso_id: Option<&str>,
        token: Option<&str>,
    ) -> bool {
        match (cookie, token) {
            (Some(c), Some(t)) if !c.is_empty() => self
                .browser_key("csrf", realm)
                .verify_tag(csrf_binding(c, sso_id).as_bytes(), t),
            _ => false,
        }
    }

    /// Signs a browser in and returns its SSO session and the secret for its
    /// cookie (always a new one, so a planted cookie never becomes a
    /// sign-in). If the browser was signed in already (`previous` cookie):
    /// as the same user, that SSO session is renewed and its apps stay
    /// signed in; as someone else, it is signed out first.
    pub async fn start_sso_session(
        &self,
        realm: &Realm,
        user: &User,
        meta: &ClientMeta,
        previous: Option<&str>,
    ) -> Result<(SsoSession, String), OAuthError> {
        let secret = random_token(32);
        let now = now_ms();
        let expires_at = now + self.config.browser.sso_session_max_secs * 1000;
        if let Some(prev) = self.signed_in(realm, previous).await? {
            if prev.user.id == user.id {
                let renewed = self
                    .browser_db
                    .renew_sso_session(&prev.sso.id, &TokenHash::of(&secret), now, expires_at)
                    .await
                    .map_err(OAuthError::server_error)?;
                if let Some(sso) = renewed {
                    return Ok((sso, secret));
                }
            } else {
                self.end_sso_session(&prev.sso.id).await?;
            }
        }
        let sso = SsoSession {
            id: uuid::Uuid::new_v4().to_string(),
            realm_id: realm.id.clone(),
            user_id: user.id.clone(),
            secret_hash: TokenHash::of(&secret),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            auth_time: now,
            created_at: now,
            last_used_at: now,
            expires_at,
            revoked_at: None,
        };
        self.browser_db
            .create_sso_session(&sso)
            .await
            .map_err(OAuthError::server_error)?;
        tracing::info!(realm = %realm.name, user = %user.id, sso = %sso.id, "browser signed in");
        Ok((sso, secret))
    }

    /// The browser behind an SSO cookie, if it is signed in to this realm
    /// as an enabled user.
    pub async fn signed_in(
        &self,
        realm: &Realm,
        cookie: Option<&str>,
    ) -> Result<Option<SignedIn>, OAuthError> {
        let Some(cookie) = cookie.filter(|c| !c.is_empty() && c.len() <= 128) else {
            return Ok(None);
        };
        let Some(sso) = self
            .browser_db
            .touch_sso_session(&TokenHash::of(cookie), now_ms())
            .await
            .map_err(OAuthError::server_error)?
            .filter(|s| s.realm_id == realm.id)
        else {
            return Ok(None);
        };
        let user = self
            .user_db
            .user(&realm.id, &sso.user_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|u| u.enabled);
        Ok(user.map(|user| SignedIn { sso, user }))
    }

    /// Signs a browser out: its SSO session and every session it started.
    /// Returns whether it was signed in.
    pub async fn end_sso_session(&self, sso_id: &str) -> Result<bool, OAuthError> {
        let ended = self
            .browser_db
            .revoke_sso_session(sso_id, now_ms())
            .await
            .map_err(OAuthError::server_error)?;
        Ok(match ended {
            Some((owner, sessions)) => {
                self.sessions
                    .announce_ended(&owner.realm_id, &owner.user_id, sessions);
                true
            }
            None => false,
        })
    }
}
