//! Checking a username and password, shared by the password grant, the login
//! page and the account page's change-password form: throttled per username,
//! and as slow for an unknown user as for a wrong password.

use crate::password::PasswordHasher;
use crate::throttle::LoginThrottle;
use std::sync::Arc;
use tessera_core::{OAuthError, OAuthErrorCode, Realm, Secret, User};
use tessera_store::UserStore;

/// The one message every failed login gets.
pub const BAD_CREDENTIALS: &str = "Invalid user credentials";

/// Username + password checks, throttled.
#[derive(Clone)]
pub struct PasswordCheck {
    pub(crate) user_db: Arc<dyn UserStore>,
    pub(crate) passwords: Arc<PasswordHasher>,
    pub(crate) throttle: Arc<LoginThrottle>,
}

impl PasswordCheck {
    /// The enabled user with this username and password. Any failure is
    /// `InvalidUserCredentials` with the same message (or `TooManyRequests`
    /// once the username, or `address`, has used up its attempts).
    pub async fn check_password(
        &self,
        realm: &Realm,
        username: &str,
        password: &Secret<String>,
        address: Option<&str>,
    ) -> Result<User, OAuthError> {
        let username = username.to_lowercase();
        let attempt = self.throttle.begin(&realm.id, &username, address).await?;
        let user = match self.user_db.user_by_username(&realm.id, &username).await {
            Ok(u) => u,
            Err(e) => {
                attempt.not_counted().await;
                return Err(OAuthError::server_error(e));
            }
        };
        let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let verified = match self.passwords.verify(hash, password).await {
            Ok(v) => v,
            Err(e) => {
                attempt.not_counted().await;
                return Err(e);
            }
        };
        match user {
            Some(u) if verified && u.enabled => {
                attempt.succeeded().await;
                Ok(u)
            }
            _ => {
                drop(attempt); // counted when it began
                Err(OAuthError::new(
                    OAuthErrorCode::InvalidUserCredentials,
                    BAD_CREDENTIALS,
                ))
            }
        }
    }
}
