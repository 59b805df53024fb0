//! Upstream providers: CodeStream's "Connect to X" and "Sign up with X"
//! flows, routing callbacks between runtime environments, and the machinery
//! behind Che's OAuth API. API boundary: no HTTP types; the `http` crate maps
//! requests onto `start`/`callback`/`check_signup` and `ConnectError`s onto
//! pages or JSON.
//!
//! Provider tokens are sealed (AES-256-GCM under a key derived from the
//! master key, bound to the user and provider) before they reach the store,
//! and published once on the user's me-channel.

pub mod config;
pub mod provider;
pub mod state;

pub use config::{ConnectConfig, ProviderConfig, ProviderKind};
pub use provider::{Identity, Provider, ProviderTokens};
pub use state::{Flow, StateClaims};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use provider::{Granted, Pending};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::scope::ScopeSet;
use tessera_core::time::{now_ms, now_secs};
use tessera_core::{ProviderConnection, ProviderState, Realm, Signup, TokenHash, User};
use tessera_keys::{MacKey, MasterKey};
use tessera_oauth::issue::{new_refresh_token, new_session, Issue, Subject};
use tessera_oauth::{self_service, TokenResponse, TokenService};
use tessera_store::{ClientMeta, StoreError};
use url::Url;

/// How long a sign-up token can wait for its callback.
pub const SIGNUP_TTL_MS: i64 = 600_000;
/// The me-channel event carrying a new provider token.
pub const CONNECTED_EVENT: &str = "providerConnected";
/// The client attribute that lets a client receive tokens from provider
/// sign-ups (`"true"`); off unless an administrator sets it.
pub const SIGNUP_ATTRIBUTE: &str = "tessera.signup.enabled";
/// How long a connect link (made for an IDE's bearer token) can be opened.
pub const LINK_TTL_SECS: i64 = 300;
/// The short code a sign-up's browser page and its polling client both show.
const CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Why a connect request failed. `status` is the HTTP status and `code` the
/// machine-readable error; the `Display` text is safe to show to the user.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Unknown provider {0:?}.")]
    UnknownProvider(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Sign in first: this needs a signed-in user or a sign-up token.")]
    Unauthenticated,
    #[error("The sign-in link is missing its state.")]
    MissingState,
    #[error("The sign-in link is not valid (its state was altered or was not issued here).")]
    InvalidState,
    #[error("The sign-in link has expired or was already used. Start again.")]
    StateSpent,
    #[error("The sign-in link was issued for {0}, not for this provider.")]
    WrongProvider(String),
    #[error(
        "This sign-in was started in another browser (or its cookie expired). Start again here."
    )]
    OtherBrowser,
    #[error("The sign-in link names an environment this deployment does not know.")]
    UnknownEnvironment,
    #[error("{provider} did not grant access: {error}.")]
    Denied { provider: String, error: String },
    #[error("{0} did not accept the sign-in. Start again.")]
    Exchange(String),
    #[error("{0} cannot be reached right now. Try again later.")]
    Unavailable(String),
    #[error("This {0} account is already connected to another user.")]
    IdentityTaken(String),
    #[error("The redirect is not an allowed origin.")]
    ForbiddenRedirect,
    #[error("This sign-up token was already used.")]
    SignupTokenUsed,
    #[error("The sign-up has expired. Start again.")]
    SignupExpired,
    #[error("No such connection.")]
    NotConnected,
    #[error("The user is unknown or disabled.")]
    UserGone,
    /// A self-service flow met the admin realm or an administrator's account.
    #[error("{0}")]
    Refused(&'static str),
    #[error("This link has expired, was already used, or was not issued here. Start again from your application.")]
    InvalidLink,
    #[error("This link was made for another account. Sign out, sign in as the account that asked for it, and open the link again (or start again from your application).")]
    OtherAccount,
    #[error("The account this sign-up would use changed meanwhile. Start again.")]
    SignupChanged,
    #[error("The {0} token has expired and could not be refreshed: connect {0} again.")]
    ReconnectRequired(String),
    #[error("Internal error.")]
    Internal(String),
}

impl ConnectError {
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownProvider(_) | Self::NotConnected => 404,
            Self::Unauthenticated => 401,
            Self::Denied { .. } | Self::UserGone | Self::Refused(_) | Self::OtherAccount => 403,
            Self::IdentityTaken(_)
            | Self::SignupTokenUsed
            | Self::SignupChanged
            | Self::ReconnectRequired(_) => 409,
            Self::Unavailable(_) => 502,
            Self::Internal(_) => 500,
            _ => 400,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownProvider(_) => "unknown_provider",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Unauthenticated => "invalid_token",
            Self::MissingState
            | Self::InvalidState
            | Self::WrongProvider(_)
            | Self::OtherBrowser => "invalid_state",
            Self::StateSpent => "expired_state",
            Self::UnknownEnvironment => "unknown_environment",
            Self::Denied { .. } => "access_denied",
            Self::Exchange(_) => "provider_error",
            Self::Unavailable(_) => "provider_unavailable",
            Self::IdentityTaken(_) => "identity_taken",
            Self::ForbiddenRedirect => "invalid_redirect",
            Self::SignupTokenUsed => "signup_used",
            Self::SignupExpired => "expired_token",
            Self::NotConnected => "not_connected",
            Self::UserGone => "user_disabled",
            Self::Refused(_) => "access_denied",
            Self::InvalidLink => "invalid_link",
            Self::OtherAccount => "wrong_account",
            Self::SignupChanged => "signup_changed",
            Self::ReconnectRequired(_) => "reconnect_required",
            Self::Internal(_) => "server_error",
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Internal(e.to_string())
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        internal(e)
    }
}

/// Who starts a provider round trip.
pub enum Start {
    /// A signed-in user connects the provider to their account.
    Connect { realm: Realm, user_id: String },
    /// An anonymous client signs up; tokens go to `client_id` (a public
    /// client of the default realm) when it polls `check-signup`.
    Signup { token: String, client_id: String },
    /// Che's OAuth API; the browser goes back to `redirect_after_login`.
    Che {
        realm: Realm,
        user_id: String,
        redirect_after_login: String,
    },
}

/// A started round trip: where to send the browser, and the cookie that
/// binds the callback to this browser.
pub struct Started {
    pub url: Url,
    pub cookie_name: String,
    pub cookie_value: String,
    pub max_age_secs: i64,
}

/// Where the callback sends the browser.
#[derive(Debug, PartialEq, Eq)]
pub enum Landing {
    /// A sign-up came back from the provider: the person in the browser
    /// confirms on Tessera's page before anything is linked or released.
    ConfirmSignup(SignupConfirmation),
    /// The person refused the sign-up on the confirmation page.
    SignupCancelled,
    /// The state belongs to another environment: the same path and query there.
    Forward(String),
    /// Connected (or signed up): the success page.
    Connected { provider: String, url: String },
    /// Che: back to `redirect_after_login`.
    Redirect(String),
}

/// What the sign-up confirmation page shows and posts back.
#[derive(Debug, PartialEq, Eq)]
pub struct SignupConfirmation {
    /// The round trip's id (posted back with `csrf`).
    pub flow: String,
    pub csrf: String,
    /// The application that asked (the client's name, else its id).
    pub app: String,
    pub provider: String,
    /// The account it will sign in as, or the username of the new one.
    pub username: String,
    pub email: Option<String>,
    pub new_account: bool,
    /// The code the polling application shows too (`BCDF-GHJK`).
    pub user_code: String,
}

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

/// A one-time link that lets a browser signed in as `user_id` connect
/// `provider` (made for an IDE's bearer token, or by Che's API).
#[derive(Clone, Debug, serde::Deserialize, Serialize)]
pub struct ConnectLink {
    typ: String,
    pub jti: String,
    pub exp: i64,
    /// Internal realm id.
    pub realm: String,
    pub sub: String,
    pub prv: String,
    /// Che: where the browser goes afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
}

const LINK_TYP: &str = "connect-link";

/// The callback's query (`code`, `state`, or the provider's `error`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// `check-signup` outcomes other than success.
#[derive(Debug, PartialEq, Eq)]
pub enum SignupPoll {
    /// Not confirmed yet; the code the browser page shows.
    Pending {
        user_code: String,
    },
    NotFound,
    Used,
    Expired,
    Denied(String),
}

/// A completed sign-up: the "me" object, the provider and Tessera tokens.
#[derive(Serialize)]
pub struct SignedUp {
    pub user: Me,
    pub provider: String,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

/// The user as a client shows it (CodeStream's "me" object).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub created_timestamp: i64,
    pub providers: Vec<String>,
}

/// A connection as listed to its user (never the token).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub provider: String,
    pub display_name: String,
    pub subject: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    pub connected_at: i64,
}

/// A provider as listed by Che's `GET /api/oauth`.
pub struct ProviderInfo {
    pub name: String,
    pub display_name: String,
    pub authorize_endpoint: Option<String>,
}

pub struct ConnectService {
    pub tokens: TokenService,
    pub config: Arc<ConnectConfig>,
    providers: BTreeMap<String, Arc<Provider>>,
    /// Also used by the relay.
    pub http: reqwest::Client,
    state_key: MacKey,
    link_key: MacKey,
    vault: MasterKey,
}

impl ConnectService {
    /// Resolves every provider (presets, secrets from `read_env` or files).
    pub fn new(
        tokens: TokenService,
        config: ConnectConfig,
        read_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, config::ConfigError> {
        config.validate()?;
        let http = reqwest::Client::builder()
            // Following redirects would open the server to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config::ConfigError::Invalid(e.to_string()))?;
        let mut providers = BTreeMap::new();
        for (name, p) in &config.providers {
            let spec = p.resolve(name, read_env)?;
            providers.insert(name.clone(), Arc::new(Provider::new(spec, http.clone())));
        }
        let master = tokens.keys.master();
        Ok(Self {
            state_key: master.mac_key("provider-state"),
            link_key: master.mac_key("connect-link"),
            vault: master.derive_key("provider-tokens"),
            tokens,
            config: Arc::new(config),
            providers,
            http,
        })
    }

    pub fn provider(&self, name: &str) -> Result<&Arc<Provider>, ConnectError> {
        self.providers
            .get(name)
            .ok_or_else(|| ConnectError::UnknownProvider(name.to_string()))
    }

    pub async fn providers(&self) -> Vec<ProviderInfo> {
        let mut out = Vec::new();
        for (name, p) in &self.providers {
            out.push(ProviderInfo {
                name: name.clone(),
                display_name: p.spec.display_name.clone(),
                authorize_endpoint: p.known_authorize_endpoint().map(|u| u.to_string()),
            });
        }
        out
    }

    /// Tessera's own base: `auth_origin` for callbacks, else the public URL.
    fn callback_base(&self) -> &str {
        self.config
            .auth_origin
            .as_deref()
            .unwrap_or(&self.tokens.config.public_url)
            .trim_end_matches('/')
    }

    fn redirect_uri(&self, flow: Flow, provider: &str) -> String {
        match flow {
            Flow::Che => format!("{}/api/oauth/callback", self.callback_base()),
            _ => format!("{}/no-auth/provider-token/{provider}", self.callback_base()),
        }
    }

    /// Whether Che may send the browser to `url` afterwards: Tessera's own
    /// origin, the callback origin, or a configured one.
    pub fn allowed_redirect(&self, url: &str) -> bool {
        let Some(origin) = config::origin_of(url) else {
            return false;
        };
        let own = [
            Some(self.tokens.config.public_url.as_str()),
            self.config.auth_origin.as_deref(),
        ];
        own.into_iter()
            .flatten()
            .filter_map(config::origin_of)
            .chain(
                self.config
                    .redirect_origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_string()),
            )
            .any(|o| o == origin)
    }

    /// Starts a round trip: remembers the PKCE verifier and nonce under a
    /// fresh `jti`, signs the state, and answers the provider URL with the
    /// binding cookie the browser must bring back to the callback.
    pub async fn start(&self, provider_name: &str, start: Start) -> Result<Started, ConnectError> {
        let provider = self.provider(provider_name)?;
        let now = now_ms();
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let binding = tessera_core::secret::random_token(32);
        let mut claims = StateClaims {
            env: self.config.runtime_environment.clone(),
            jti: jti.clone(),
            exp: now_secs() + state::STATE_TTL_SECS,
            prv: provider_name.to_string(),
            flow: Flow::Connect,
            realm: String::new(),
            sub: None,
            sut: None,
            ret: None,
            bnd: Some(TokenHash::of(&binding).as_str().to_string()),
        };
        let mut signup = None;
        match start {
            Start::Connect { realm, user_id } => {
                self.live_user(&realm.id, &user_id).await?;
                claims.realm = realm.id;
                claims.sub = Some(user_id);
            }
            Start::Che {
                realm,
                user_id,
                redirect_after_login,
            } => {
                if !self.allowed_redirect(&redirect_after_login) {
                    return Err(ConnectError::ForbiddenRedirect);
                }
                self.live_user(&realm.id, &user_id).await?;
                claims.flow = Flow::Che;
                claims.realm = realm.id;
                claims.sub = Some(user_id);
                claims.ret = Some(redirect_after_login);
            }
            Start::Signup { token, client_id } => {
                let s = self
                    .new_signup(&token, &client_id, provider_name, now)
                    .await?;
                claims.flow = Flow::Signup;
                claims.realm = s.realm_id.clone();
                claims.sut = Some(s.hash.as_str().to_string());
                signup = Some(s);
            }
        }
        let state = self.state_key.sign_jwt(&claims);
        let redirect = self.redirect_uri(claims.flow, provider_name);
        let (url, pending) = provider
            .authorize_url(&redirect, &state)
            .await
            .map_err(|e| {
                tracing::warn!(provider = %provider_name, error = %e, "provider unavailable");
                ConnectError::Unavailable(provider.spec.display_name.clone())
            })?;
        // Only now, with the provider reachable, is a sign-up token used up.
        if let Some(s) = &signup {
            match self.tokens.store.insert_signup(s).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => return Err(ConnectError::SignupTokenUsed),
                Err(e) => return Err(e.into()),
            }
        }
        let secret = serde_json::to_vec(&pending).map_err(internal)?;
        self.tokens
            .store
            .insert_provider_state(&ProviderState {
                id: jti.clone(),
                provider: provider_name.to_string(),
                secret: URL_SAFE_NO_PAD.encode(self.vault.seal(&format!("state/{jti}"), &secret)),
                created_at: now,
                expires_at: now + state::STATE_TTL_SECS * 1000,
            })
            .await?;
        Ok(Started {
            url,
            cookie_name: self.binding_cookie(&jti),
            cookie_value: binding,
            max_age_secs: state::STATE_TTL_SECS,
        })
    }

    async fn live_user(&self, realm_id: &str, user_id: &str) -> Result<User, ConnectError> {
        self.tokens
            .store
            .user(realm_id, user_id)
            .await?
            .filter(|u| u.enabled)
            .ok_or(ConnectError::UserGone)
    }

    async fn default_realm(&self) -> Result<Realm, ConnectError> {
        self.tokens
            .realm(&self.config.default_realm)
            .await
            .map_err(|e| internal(e.description))
    }

    /// Checks a sign-up request; the row is written once the provider URL
    /// is built.
    async fn new_signup(
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
            .tokens
            .store
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
        if self.tokens.store.signup(&hash).await?.is_some() {
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

    /// The name of round trip `jti`'s binding cookie: `__Host-` over https,
    /// so a sibling domain cannot plant one.
    fn binding_cookie(&self, jti: &str) -> String {
        state::binding_cookie_name(&self.tokens.config.public_url, jti)
    }

    /// Spends a round trip whose callback came back to the wrong browser,
    /// and tells a sign-up's poller.
    async fn abandon(&self, claims: &StateClaims) {
        let store = &self.tokens.store;
        let now = now_ms();
        if let Err(e) = store.take_provider_state(&claims.jti, now).await {
            tracing::error!(error = %e, "could not spend a misdirected provider state");
        }
        if let Some(hash) = &claims.sut {
            let hash = TokenHash::from_stored(hash.clone());
            if let Err(e) = store
                .complete_signup(&hash, None, Some(ConnectError::OtherBrowser.code()), now)
                .await
            {
                tracing::error!(error = %e, "could not record the failed sign-up");
            }
        }
    }

    /// The provider's callback (`path_provider` is `None` on Che's
    /// `/api/oauth/callback`). `path_and_query` is the request's, for
    /// forwarding to another environment unchanged; `cookie` reads the
    /// request's cookies. Everything that can be checked without spending
    /// the state is checked first, so a refused callback leaves it usable.
    pub async fn callback(
        &self,
        path_provider: Option<&str>,
        q: &CallbackQuery,
        path_and_query: &str,
        cookie: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Landing, ConnectError> {
        let raw = q.state.as_deref().ok_or(ConnectError::MissingState)?;
        let env = state::peek_env(raw).ok_or(ConnectError::InvalidState)?;
        if env != self.config.runtime_environment {
            let base = self
                .config
                .environments
                .get(&env)
                .ok_or(ConnectError::UnknownEnvironment)?;
            return Ok(Landing::Forward(format!(
                "{}{path_and_query}",
                base.trim_end_matches('/')
            )));
        }
        let claims: StateClaims = self
            .state_key
            .verify_jwt(raw)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or(ConnectError::InvalidState)?;
        if claims.exp <= now_secs() {
            return Err(ConnectError::StateSpent);
        }
        match path_provider {
            Some(p) if p != claims.prv || claims.flow == Flow::Che => {
                return Err(ConnectError::WrongProvider(claims.prv));
            }
            None if claims.flow != Flow::Che => return Err(ConnectError::InvalidState),
            _ => {}
        }
        // The browser that started the round trip must be the one finishing
        // it: otherwise a victim who opens an attacker's provider link would
        // connect their account to the attacker, or sign the attacker in.
        let binding = cookie(&self.binding_cookie(&claims.jti)).filter(|secret| {
            claims
                .bnd
                .as_deref()
                .is_some_and(|expected| TokenHash::of(secret).as_str() == expected)
        });
        let Some(binding) = binding else {
            // The provider's code reached another browser: it must never be
            // redeemable, not even by the browser that started the round
            // trip (its owner could have asked the victim for this URL).
            self.abandon(&claims).await;
            return Err(ConnectError::OtherBrowser);
        };
        let provider = self.provider(&claims.prv)?.clone();
        let signup = match &claims.sut {
            Some(hash) => Some(
                self.tokens
                    .store
                    .signup(&TokenHash::from_stored(hash.clone()))
                    .await?
                    .ok_or(ConnectError::InvalidState)?,
            ),
            None => None,
        };
        let now = now_ms();
        let stored = self
            .tokens
            .store
            .take_provider_state(&claims.jti, now)
            .await?
            .filter(|s| s.provider == claims.prv)
            .ok_or(ConnectError::StateSpent)?;
        let pending: Pending = URL_SAFE_NO_PAD
            .decode(&stored.secret)
            .ok()
            .and_then(|b| self.vault.open(&format!("state/{}", claims.jti), &b).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| internal("provider state does not unseal"))?;
        let outcome = self
            .finish(
                &claims,
                &provider,
                signup.as_ref(),
                q,
                pending,
                &binding,
                now,
            )
            .await;
        if let (Err(e), Some(s)) = (&outcome, &signup) {
            // Tells the polling client; the sign-up token is dead afterwards.
            if let Err(store) = self
                .tokens
                .store
                .complete_signup(&s.hash, None, Some(e.code()), now)
                .await
            {
                tracing::error!(error = %store, "could not record the failed sign-up");
            }
        }
        outcome
    }

    /// The callback after its state was spent.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        claims: &StateClaims,
        provider: &Provider,
        signup: Option<&Signup>,
        q: &CallbackQuery,
        pending: Pending,
        binding: &str,
        now: i64,
    ) -> Result<Landing, ConnectError> {
        if let Some(s) = signup {
            if s.completed_at.is_some() || s.expires_at <= now {
                return Err(ConnectError::SignupExpired);
            }
        }
        let display = provider.spec.display_name.clone();
        if let Some(error) = &q.error {
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            return Err(ConnectError::Denied {
                provider: display,
                error,
            });
        }
        let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
            return Err(ConnectError::InvalidRequest(
                "The provider sent neither a code nor an error.".into(),
            ));
        };
        let redirect = self.redirect_uri(claims.flow, &claims.prv);
        let granted = match provider.exchange(&redirect, code, pending).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(provider = %claims.prv, error = %e, "provider code exchange failed");
                return Err(match e {
                    provider::ProviderError::Discovery(_) => ConnectError::Unavailable(display),
                    _ => ConnectError::Exchange(display),
                });
            }
        };
        let user = match (&claims.sub, signup) {
            (Some(user_id), _) => {
                let user = self.live_user(&claims.realm, user_id).await?;
                if let Some(owner) = self
                    .tokens
                    .store
                    .provider_identity_user(&claims.realm, &claims.prv, &granted.identity.subject)
                    .await?
                {
                    if owner != user.id {
                        return Err(ConnectError::IdentityTaken(display));
                    }
                }
                user
            }
            (None, Some(s)) => {
                return self
                    .hold_signup(claims, provider, s, granted, binding, now)
                    .await
            }
            (None, None) => return Err(ConnectError::InvalidState),
        };
        self.save(&user, &claims.prv, &granted, now).await?;
        Ok(self.connected(&user, &claims.prv, &granted, claims.ret.clone()))
    }

    /// Tells the user's sockets and says where the browser goes.
    fn connected(
        &self,
        user: &User,
        provider: &str,
        granted: &Granted,
        ret: Option<String>,
    ) -> Landing {
        self.tokens.publish_to_user(
            &user.id,
            CONNECTED_EVENT,
            serde_json::json!({
                "provider": provider,
                "accessToken": granted.tokens.access_token,
                "expiresAt": granted.expires_at,
            }),
        );
        tracing::info!(provider, user = %user.id, "provider connected");
        match ret {
            Some(ret) => Landing::Redirect(ret),
            None => Landing::Connected {
                url: self.config.success_url.clone().unwrap_or_else(|| {
                    format!(
                        "{}/web/provider-connected/{provider}",
                        self.tokens.config.public_url
                    )
                }),
                provider: provider.to_string(),
            },
        }
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

    fn confirm_tag_data(flow: &str, binding: &str) -> Vec<u8> {
        format!("signup-confirm\n{flow}\n{binding}").into_bytes()
    }

    /// The callback of a sign-up: nothing is linked, created or released
    /// yet. The outcome is held (sealed, under the round trip's id) until
    /// the person in this browser confirms on Tessera's page.
    async fn hold_signup(
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
            .tokens
            .store
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
        self.tokens
            .store
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
        let store = &self.tokens.store;
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
            .tokens
            .store
            .complete_signup(&signup.hash, Some(&user.id), None, now)
            .await?
        {
            return Err(ConnectError::SignupExpired);
        }
        Ok(self.connected(&user, &signup.provider, &held.granted, None))
    }

    fn seal(
        &self,
        user_id: &str,
        provider: &str,
        tokens: &ProviderTokens,
    ) -> Result<String, ConnectError> {
        let plain = serde_json::to_vec(tokens).map_err(internal)?;
        Ok(URL_SAFE_NO_PAD.encode(
            self.vault
                .seal(&format!("provider-token/{user_id}/{provider}"), &plain),
        ))
    }

    fn open(&self, c: &ProviderConnection) -> Result<ProviderTokens, ConnectError> {
        URL_SAFE_NO_PAD
            .decode(&c.secret)
            .ok()
            .and_then(|b| {
                self.vault
                    .open(&format!("provider-token/{}/{}", c.user_id, c.provider), &b)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| internal("provider token does not unseal"))
    }

    async fn save(
        &self,
        user: &User,
        provider: &str,
        granted: &Granted,
        now: i64,
    ) -> Result<(), ConnectError> {
        let created_at = self
            .tokens
            .store
            .provider_connection(&user.id, provider)
            .await?
            .map_or(now, |c| c.created_at);
        let connection = ProviderConnection {
            realm_id: user.realm_id.clone(),
            user_id: user.id.clone(),
            provider: provider.to_string(),
            subject: granted.identity.subject.clone(),
            secret: self.seal(&user.id, provider, &granted.tokens)?,
            scopes: granted.scopes.clone(),
            expires_at: granted.expires_at,
            created_at,
            updated_at: now,
        };
        match self.tokens.store.put_provider_connection(&connection).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(ConnectError::IdentityTaken(
                self.provider(provider)?.spec.display_name.clone(),
            )),
            Err(e) => Err(e.into()),
        }
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
        let store = &self.tokens.store;
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
        let query = tessera_store::UserQuery {
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
            match self.tokens.store.create_user(&user).await {
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
        let store = &self.tokens.store;
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
            .tokens
            .token_response(Issue {
                realm: &realm,
                client: &client,
                subject: Subject::User(&user),
                session: Some(&session),
                refresh: Some(&refresh),
                scope: &scope,
                nonce: None,
            })
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
            .tokens
            .store
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

    /// The user's connections, without tokens.
    pub async fn connections(&self, user_id: &str) -> Result<Vec<ConnectionInfo>, ConnectError> {
        Ok(self
            .tokens
            .store
            .user_provider_connections(user_id)
            .await?
            .into_iter()
            .map(|c| ConnectionInfo {
                display_name: self
                    .providers
                    .get(&c.provider)
                    .map_or_else(|| c.provider.clone(), |p| p.spec.display_name.clone()),
                provider: c.provider,
                subject: c.subject,
                scopes: c.scopes,
                expires_at: c.expires_at,
                connected_at: c.created_at,
            })
            .collect())
    }

    /// Deletes the stored token, then asks the provider to revoke it (a
    /// provider that fails to is logged: the token is gone from here).
    pub async fn disconnect(&self, user_id: &str, provider: &str) -> Result<(), ConnectError> {
        let c = self
            .tokens
            .store
            .delete_provider_connection(user_id, provider)
            .await?
            .ok_or(ConnectError::NotConnected)?;
        // The row is gone either way; a token that does not unseal cannot
        // be revoked, which is logged, not failed.
        let tokens = match self.open(&c) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(provider, user = %user_id, error = %e, "disconnected a token that does not unseal");
                return Ok(());
            }
        };
        if let Some(p) = self.providers.get(provider) {
            match p.revoke(&tokens).await {
                Ok(true) => tracing::info!(provider, user = %user_id, "provider token revoked"),
                Ok(false) => {
                    tracing::info!(provider, user = %user_id, "provider has no revocation endpoint")
                }
                Err(e) => {
                    tracing::warn!(provider, user = %user_id, error = %e, "provider revocation failed")
                }
            }
        }
        Ok(())
    }

    /// The user's current access token for `provider` (Che's
    /// `GET /api/oauth/token`), refreshed first when it expires within 30 s
    /// and a refresh token is stored.
    pub async fn current_token(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<(String, Vec<String>), ConnectError> {
        let p = self.provider(provider)?;
        let store = &self.tokens.store;
        let mut c = store
            .provider_connection(user_id, provider)
            .await?
            .ok_or(ConnectError::NotConnected)?;
        let mut tokens = self.open(&c)?;
        let now = now_ms();
        if let (Some(exp), Some(refresh)) = (c.expires_at, tokens.refresh_token.clone()) {
            if exp - 30_000 <= now {
                match p.refresh(&refresh).await {
                    Ok((fresh, expires_at)) => {
                        c.secret = self.seal(user_id, provider, &fresh)?;
                        c.expires_at = expires_at;
                        c.updated_at = now;
                        // An update, never an insert: a disconnect that ran
                        // meanwhile stays a disconnect.
                        if !store.update_provider_tokens(&c).await? {
                            return Err(ConnectError::NotConnected);
                        }
                        tokens = fresh;
                    }
                    Err(e) => {
                        tracing::warn!(provider, user = %user_id, error = %e, "provider refresh failed");
                        // Still good for a few seconds: use it; else the
                        // client must send its user through connect again.
                        if exp <= now {
                            return Err(ConnectError::ReconnectRequired(
                                p.spec.display_name.clone(),
                            ));
                        }
                    }
                }
            }
        }
        if c.expires_at.is_some_and(|exp| exp <= now) {
            return Err(ConnectError::ReconnectRequired(p.spec.display_name.clone()));
        }
        Ok((tokens.access_token, c.scopes))
    }

    /// A one-time link for `user_id` to connect `provider` in a browser:
    /// the page it opens checks that the browser is signed in as that user
    /// and asks them to confirm. `ret` is Che's `redirect_after_login`.
    /// Returns the URL and its lifetime in seconds.
    pub async fn connect_link(
        &self,
        realm: &Realm,
        user_id: &str,
        provider: &str,
        ret: Option<String>,
    ) -> Result<(String, i64), ConnectError> {
        self.provider(provider)?;
        if ret.as_deref().is_some_and(|r| !self.allowed_redirect(r)) {
            return Err(ConnectError::ForbiddenRedirect);
        }
        self.live_user(&realm.id, user_id).await?;
        let link = self.link_key.sign_jwt(&ConnectLink {
            typ: LINK_TYP.into(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            exp: now_secs() + LINK_TTL_SECS,
            realm: realm.id.clone(),
            sub: user_id.to_string(),
            prv: provider.to_string(),
            ret,
        });
        let enc = |s: &str| -> String {
            url::form_urlencoded::byte_serialize(s.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        };
        Ok((
            format!(
                "{}/realms/{}/account/connect/{}?link={link}",
                self.tokens.config.public_url,
                enc(&realm.name),
                enc(provider)
            ),
            LINK_TTL_SECS,
        ))
    }

    /// Checks a connect link for `provider` in `realm` (signature, kind,
    /// expiry); it is spent by `start_from_link`.
    pub fn open_link(
        &self,
        raw: &str,
        realm: &Realm,
        provider: &str,
    ) -> Result<ConnectLink, ConnectError> {
        let link: ConnectLink = (raw.len() <= 4096)
            .then(|| self.link_key.verify_jwt(raw).ok())
            .flatten()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or(ConnectError::InvalidLink)?;
        if link.typ != LINK_TYP
            || link.exp <= now_secs()
            || link.realm != realm.id
            || link.prv != provider
        {
            return Err(ConnectError::InvalidLink);
        }
        Ok(link)
    }

    /// Spends the link (once, on any node) and starts the round trip for
    /// its user, who must be `signed_in_user`.
    pub async fn start_from_link(
        &self,
        realm: &Realm,
        link: ConnectLink,
        signed_in_user: &str,
    ) -> Result<Started, ConnectError> {
        if link.sub != signed_in_user {
            return Err(ConnectError::OtherAccount);
        }
        let spent = ProviderState {
            id: format!("link-{}", link.jti),
            provider: link.prv.clone(),
            secret: String::new(),
            created_at: now_ms(),
            expires_at: link.exp * 1000,
        };
        match self.tokens.store.insert_provider_state(&spent).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(ConnectError::InvalidLink),
            Err(e) => return Err(e.into()),
        }
        let start = match link.ret {
            Some(redirect_after_login) => Start::Che {
                realm: realm.clone(),
                user_id: link.sub,
                redirect_after_login,
            },
            None => Start::Connect {
                realm: realm.clone(),
                user_id: link.sub,
            },
        };
        self.start(&link.prv, start).await
    }

    /// The default realm (where connections and sign-ups live).
    pub async fn realm(&self) -> Result<Realm, ConnectError> {
        self.default_realm().await
    }

    /// The base URL of a configured environment, for the relay.
    pub fn environment(&self, name: &str) -> Option<&str> {
        self.config.environments.get(name).map(String::as_str)
    }
}

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
