//! SSO sign-up (CodeStream's "Sign up with X"): a client-chosen token starts
//! the round trip; the callback holds the outcome until the person in the
//! browser confirms on Tessera's page (the app, the account, the code the
//! polling client also shows); `check-signup` then releases the tokens once.
//! Self-service: never the admin realm, never an administrator's account,
//! email linking only for providers with `trust_email`.

use crate::error::internal;
use crate::provider::Granted;
use crate::{
    ConnectError, ConnectService, Identity, Landing, Me, Provider, SignedUp, SignupConfirmation,
    SignupPoll, StateClaims, SIGNUP_ATTRIBUTE, SIGNUP_TTL_MS,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use std::collections::BTreeMap;
use tessera_core::scope::ScopeSet;
use tessera_core::time::now_ms;
use tessera_core::{ProviderState, Signup, TokenHash, User};
use tessera_oauth::data::{ClientMeta, StoreError};
use tessera_oauth::issue::{new_refresh_token, new_session, Issue};
use tessera_oauth::self_service;

/// A sign-up between the provider's callback and the person's confirmation
/// (sealed in a provider-state row named `signup-<flow>`, taken once).
#[derive(serde::Deserialize, Serialize)]
struct HeldSignup {
    /// The sign-up token's hash.
    signup: String,
    /// The hash of the browser's binding secret.
    bnd: String,
    /// The account shown on the page (`None`: a new one).
    user: Option<String>,
    granted: Granted,
}

/// The short code a sign-up's browser page and its polling client both show.
const CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// The username a sign-up's new account gets (a suffix is added when taken).
fn username_base(provider: &str, id: &Identity) -> String {
    let base = id
        .username
        .clone()
        .or_else(|| {
            id.email
                .as_ref()
                .and_then(|e| e.split('@').next().map(str::to_string))
        })
        .unwrap_or_else(|| format!("{provider}-{}", id.subject));
    let base: String = base
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(48)
        .collect();
    if base.is_empty() {
        format!("{provider}-user")
    } else {
        base
    }
}

/// Whether a client may receive sign-up tokens: public, enabled for it by an
/// administrator, and never `admin-cli`.
fn signup_enabled(c: &tessera_core::Client) -> bool {
    c.public_client
        && c.client_id != tessera_oauth::provision::ADMIN_CLI
        && c.attributes.get(SIGNUP_ATTRIBUTE).map(String::as_str) == Some("true")
}

impl ConnectService {
    /// Checks a sign-up request; the row is written once the provider URL
    /// is built.
    pub(crate) async fn new_signup(
        &self,
        token: &str,
        client_id: &str,
        provider: &str,
        now: i64,
    ) -> Result<Signup, ConnectError> {
        if uuid::Uuid::parse_str(token).is_err() {
            return Err(ConnectError::InvalidRequest(
                "signupToken must be a UUID the client generated.".into(),
            ));
        }
        let realm = self.default_realm().await?;
        if let Some(why) = self_service::refusal(&realm, None) {
            return Err(ConnectError::Refused(why));
        }
        let client = self
            .accounts
            .client_by_client_id(&realm.id, client_id)
            .await?
            .filter(|c| c.enabled && signup_enabled(c))
            .ok_or_else(|| {
                ConnectError::InvalidRequest(format!(
                    "client_id must name a public client of realm {} with provider sign-up enabled.",
                    realm.name
                ))
            })?;
        let hash = TokenHash::of(token);
        if self.accounts.signup(&hash).await?.is_some() {
            return Err(ConnectError::SignupTokenUsed);
        }
        Ok(Signup {
            hash,
            realm_id: realm.id.clone(),
            client_id: client.id,
            provider: provider.to_string(),
            user_id: None,
            error: None,
            created_at: now,
            expires_at: now + SIGNUP_TTL_MS,
            completed_at: None,
            spent_at: None,
        })
    }

    /// The short code of a sign-up: derived from its token, so the polling
    /// client (which has the token) and the browser page show the same one.
    pub fn signup_code(&self, hash: &TokenHash) -> String {
        let tag = self
            .state_key
            .tag(format!("signup-code\n{}", hash.as_str()).as_bytes());
        let bytes = URL_SAFE_NO_PAD.decode(tag).unwrap_or_default();
        let code: String = bytes
            .iter()
            .take(8)
            .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
            .collect();
        format!(
            "{}-{}",
            &code[..4.min(code.len())],
            &code[4.min(code.len())..]
        )
    }

    pub(crate) fn confirm_tag_data(flow: &str, binding: &str) -> Vec<u8> {
        format!("signup-confirm\n{flow}\n{binding}").into_bytes()
    }

    /// The callback of a sign-up: nothing is linked, created or released
    /// yet. The outcome is held (sealed, under the round trip's id) until
    /// the person in this browser confirms on Tessera's page.
    pub(crate) async fn hold_signup(
        &self,
        claims: &StateClaims,
        provider: &Provider,
        signup: &Signup,
        granted: Granted,
        binding: &str,
        now: i64,
    ) -> Result<Landing, ConnectError> {
        let target = self
            .signup_target(signup, provider, &granted.identity)
            .await?;
        let client = self
            .accounts
            .client(&signup.realm_id, &signup.client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| {
                ConnectError::InvalidRequest("The sign-up's application is disabled.".into())
            })?;
        let (username, email, new_account) = match &target {
            Some(u) => (u.username.clone(), u.email.clone(), false),
            None => (
                username_base(&claims.prv, &granted.identity),
                granted.identity.email.clone(),
                true,
            ),
        };
        let held = HeldSignup {
            signup: signup.hash.as_str().to_string(),
            bnd: TokenHash::of(binding).as_str().to_string(),
            user: target.map(|u| u.id),
            granted,
        };
        let plain = serde_json::to_vec(&held).map_err(internal)?;
        let id = format!("signup-{}", claims.jti);
        self.accounts
            .insert_provider_state(&ProviderState {
                secret: URL_SAFE_NO_PAD.encode(self.vault.seal(&id, &plain)),
                id,
                provider: claims.prv.clone(),
                created_at: now,
                expires_at: signup.expires_at,
            })
            .await?;
        Ok(Landing::ConfirmSignup(SignupConfirmation {
            csrf: self
                .state_key
                .tag(&Self::confirm_tag_data(&claims.jti, binding)),
            flow: claims.jti.clone(),
            app: client
                .name
                .clone()
                .filter(|n| !n.trim().is_empty() && !n.starts_with("${"))
                .unwrap_or(client.client_id),
            provider: provider.spec.display_name.clone(),
            username,
            email,
            new_account,
            user_code: self.signup_code(&signup.hash),
        }))
    }

    /// The confirmation page's answer (`flow` and `csrf` from its form,
    /// `cookie` reads the request's cookies). Approved: the account is
    /// linked or created and the polling client gets its tokens; refused:
    /// the poll hears `access_denied`. Either way the held sign-up is spent.
    pub async fn confirm_signup(
        &self,
        flow: &str,
        csrf: &str,
        approve: bool,
        cookie: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Landing, ConnectError> {
        if flow.is_empty() || flow.len() > 64 {
            return Err(ConnectError::StateSpent);
        }
        let binding = cookie(&self.binding_cookie(flow)).ok_or(ConnectError::OtherBrowser)?;
        if !self
            .state_key
            .verify_tag(&Self::confirm_tag_data(flow, &binding), csrf)
        {
            return Err(ConnectError::OtherBrowser);
        }
        let now = now_ms();
        let id = format!("signup-{flow}");
        let store = &self.accounts;
        let stored = store
            .take_provider_state(&id, now)
            .await?
            .ok_or(ConnectError::StateSpent)?;
        let held: HeldSignup = URL_SAFE_NO_PAD
            .decode(&stored.secret)
            .ok()
            .and_then(|b| self.vault.open(&id, &b).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| internal("held sign-up does not unseal"))?;
        if TokenHash::of(&binding).as_str() != held.bnd {
            return Err(ConnectError::OtherBrowser);
        }
        let hash = TokenHash::from_stored(held.signup.clone());
        let signup = store.signup(&hash).await?.ok_or(ConnectError::StateSpent)?;
        if signup.completed_at.is_some() || signup.expires_at <= now {
            return Err(ConnectError::SignupExpired);
        }
        let outcome = if approve {
            self.complete_held_signup(&signup, held, now).await
        } else {
            Err(ConnectError::Denied {
                provider: stored.provider.clone(),
                error: "access_denied".into(),
            })
        };
        match outcome {
            Ok(landing) => Ok(landing),
            Err(e) => {
                if let Err(store) = store
                    .complete_signup(&hash, None, Some(e.code()), now)
                    .await
                {
                    tracing::error!(error = %store, "could not record the failed sign-up");
                }
                if approve {
                    Err(e)
                } else {
                    Ok(Landing::SignupCancelled)
                }
            }
        }
    }

    async fn complete_held_signup(
        &self,
        signup: &Signup,
        held: HeldSignup,
        now: i64,
    ) -> Result<Landing, ConnectError> {
        let provider = self.provider(&signup.provider)?.clone();
        let target = self
            .signup_target(signup, &provider, &held.granted.identity)
            .await?;
        if target.as_ref().map(|u| u.id.as_str()) != held.user.as_deref() {
            return Err(ConnectError::SignupChanged);
        }
        let user = match target {
            Some(u) => u,
            None => {
                self.create_user(
                    &signup.realm_id,
                    &signup.provider,
                    &held.granted.identity,
                    provider.spec.trust_email,
                )
                .await?
            }
        };
        self.save(&user, &signup.provider, &held.granted, now)
            .await?;
        if !self
            .accounts
            .complete_signup(&signup.hash, Some(&user.id), None, now)
            .await?
        {
            return Err(ConnectError::SignupExpired);
        }
        Ok(self.connected(&user, &signup.provider, &held.granted, None))
    }

    /// The account a sign-up will use: the one this provider identity is
    /// connected to, else (only for a provider with `trust_email`) the one
    /// whose verified email the provider verified too, else `None` (a new
    /// one). Never the admin realm's, nor an administrator's.
    async fn signup_target(
        &self,
        signup: &Signup,
        provider: &Provider,
        id: &Identity,
    ) -> Result<Option<User>, ConnectError> {
        let store = &self.accounts;
        // Sign-ups only ever happen in the default realm.
        let realm = self.default_realm().await?;
        if realm.id != signup.realm_id {
            return Err(ConnectError::StateSpent);
        }
        let allowed = |user: Option<&User>| match self_service::refusal(&realm, user) {
            Some(why) => Err(ConnectError::Refused(why)),
            None => Ok(()),
        };
        allowed(None)?;
        let name = provider.spec.name.as_str();
        if let Some(user_id) = store
            .provider_identity_user(&realm.id, name, &id.subject)
            .await?
        {
            let user = self.live_user(&realm.id, &user_id).await?;
            allowed(Some(&user))?;
            return Ok(Some(user));
        }
        if !provider.spec.trust_email {
            return Ok(None);
        }
        let (Some(email), true) = (&id.email, id.email_verified) else {
            return Ok(None);
        };
        let query = tessera_oauth::data::UserQuery {
            email: Some(email.clone()),
            exact: true,
            max: 2,
            ..Default::default()
        };
        let matches: Vec<User> = store
            .list_users(&realm.id, &query)
            .await?
            .into_iter()
            .filter(|u| {
                u.email_verified
                    && u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .collect();
        let [user] = matches.as_slice() else {
            return Ok(None);
        };
        if !user.enabled {
            return Err(ConnectError::UserGone);
        }
        allowed(Some(user))?;
        // Never silently swap the provider account a user connected.
        if store
            .provider_connection(&user.id, name)
            .await?
            .is_some_and(|c| c.subject != id.subject)
        {
            return Err(ConnectError::IdentityTaken(
                provider.spec.display_name.clone(),
            ));
        }
        Ok(Some(user.clone()))
    }

    async fn create_user(
        &self,
        realm_id: &str,
        provider: &str,
        id: &Identity,
        trust_email: bool,
    ) -> Result<User, ConnectError> {
        let base = username_base(provider, id);
        let (first_name, last_name) = match id.name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => match name.rsplit_once(' ') {
                Some((first, last)) => (Some(first.to_string()), Some(last.to_string())),
                None => (Some(name.to_string()), None),
            },
            _ => (None, None),
        };
        for attempt in 0..8 {
            let username = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
            };
            let user = User {
                id: uuid::Uuid::new_v4().to_string(),
                realm_id: realm_id.to_string(),
                username,
                email: id.email.clone(),
                // Keycloak's "Trust Email": only then is the provider's word taken.
                email_verified: trust_email && id.email.is_some() && id.email_verified,
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                enabled: true,
                password_hash: None,
                password_temporary: false,
                roles: Vec::new(),
                attributes: BTreeMap::new(),
                created_at: now_ms(),
            };
            match self.accounts.create_user(&user).await {
                Ok(()) => {
                    tracing::info!(provider, user = %user.id, "user created by provider sign-up");
                    return Ok(user);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(internal("no free username for the new user"))
    }

    /// `GET /no-auth/check-signup`: once, the user and Tessera tokens.
    pub async fn check_signup(
        &self,
        token: &str,
        meta: &ClientMeta,
    ) -> Result<Result<SignedUp, SignupPoll>, ConnectError> {
        let hash = TokenHash::of(token);
        let store = &self.accounts;
        let Some(signup) = store.signup(&hash).await? else {
            return Ok(Err(SignupPoll::NotFound));
        };
        let now = now_ms();
        if signup.spent_at.is_some() {
            return Ok(Err(SignupPoll::Used));
        }
        if let Some(error) = signup.error {
            return Ok(Err(SignupPoll::Denied(error)));
        }
        if signup.expires_at <= now {
            return Ok(Err(SignupPoll::Expired));
        }
        let Some(user_id) = signup.user_id else {
            return Ok(Err(SignupPoll::Pending {
                user_code: self.signup_code(&hash),
            }));
        };
        let realm = self.default_realm().await?;
        if realm.id != signup.realm_id {
            return Ok(Err(SignupPoll::NotFound));
        }
        // Everything the start checked is checked again: an administrator
        // may have turned sign-up off, or made the account an admin, since.
        let client = store
            .client(&realm.id, &signup.client_id)
            .await?
            .filter(|c| c.enabled && signup_enabled(c))
            .ok_or_else(|| {
                ConnectError::InvalidRequest(
                    "The sign-up's client is disabled or no longer accepts sign-ups.".into(),
                )
            })?;
        let user = self.live_user(&realm.id, &user_id).await?;
        if let Some(why) = self_service::refusal(&realm, Some(&user)) {
            return Err(ConnectError::Refused(why));
        }
        let scope = ScopeSet::parse_requested(Some("openid profile email"))
            .map_err(|e| internal(e.description))?;
        let session = new_session(&realm, &user, &client, scope.to_param(), meta, now);
        let refresh = new_refresh_token(&session, now);
        // Everything that can fail is done before the sign-up is spent.
        let me = self.me(&user).await?;
        let tokens = self
            .accounts
            .token_response(Issue::for_user(
                &realm, &client, &user, &session, &refresh, &scope,
            ))
            .await
            .map_err(|e| internal(e.description))?;
        if !store
            .spend_signup(&hash, now, &session, &refresh.record)
            .await?
        {
            return Ok(Err(SignupPoll::Used));
        }
        Ok(Ok(SignedUp {
            user: me,
            provider: signup.provider,
            tokens,
        }))
    }

    pub async fn me(&self, user: &User) -> Result<Me, ConnectError> {
        let providers = self
            .accounts
            .user_provider_connections(&user.id)
            .await?
            .into_iter()
            .map(|c| c.provider)
            .collect();
        Ok(Me {
            id: user.id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            created_timestamp: user.created_at,
            providers,
        })
    }
}
