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
mod error;
mod link;
pub mod provider;
mod signup;
pub mod state;
mod types;

pub use config::{ConnectConfig, ProviderConfig, ProviderKind};
pub use error::ConnectError;
pub use link::ConnectLink;
pub use provider::{Identity, Provider, ProviderTokens};
pub use state::{Flow, StateClaims};
pub use types::{
    CallbackQuery, ConnectionInfo, Landing, Me, ProviderInfo, SignedUp, SignupConfirmation,
    SignupPoll, Start, Started,
};

use error::internal;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use provider::{Granted, Pending};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::time::{now_ms, now_secs};
use tessera_core::{ProviderConnection, ProviderState, Realm, Signup, TokenHash, User};
use tessera_keys::{MacKey, MasterKey};
use tessera_oauth::data::StoreError;
use tessera_oauth::ProviderAccounts;

/// How long a sign-up token can wait for its callback.
pub const SIGNUP_TTL_MS: i64 = 600_000;
/// The me-channel event carrying a new provider token.
pub const CONNECTED_EVENT: &str = "providerConnected";
/// The client attribute that lets a client receive tokens from provider
/// sign-ups (`"true"`); off unless an administrator sets it.
pub const SIGNUP_ATTRIBUTE: &str = "tessera.signup.enabled";
/// How long a connect link (made for an IDE's bearer token) can be opened.
pub const LINK_TTL_SECS: i64 = 300;
pub struct ConnectService {
    pub accounts: ProviderAccounts,
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
        accounts: ProviderAccounts,
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
        let master = accounts.master_key();
        Ok(Self {
            state_key: master.mac_key("provider-state"),
            link_key: master.mac_key("connect-link"),
            vault: master.derive_key("provider-tokens"),
            accounts,
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
            .unwrap_or(self.accounts.public_url())
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
            Some(self.accounts.public_url()),
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
            match self.accounts.insert_signup(s).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => return Err(ConnectError::SignupTokenUsed),
                Err(e) => return Err(e.into()),
            }
        }
        let secret = serde_json::to_vec(&pending).map_err(internal)?;
        self.accounts
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
        self.accounts
            .user(realm_id, user_id)
            .await?
            .filter(|u| u.enabled)
            .ok_or(ConnectError::UserGone)
    }

    async fn default_realm(&self) -> Result<Realm, ConnectError> {
        self.accounts
            .realm(&self.config.default_realm)
            .await
            .map_err(|e| internal(e.description))
    }

    /// The name of round trip `jti`'s binding cookie: `__Host-` over https,
    /// so a sibling domain cannot plant one.
    fn binding_cookie(&self, jti: &str) -> String {
        state::binding_cookie_name(self.accounts.public_url(), jti)
    }

    /// Spends a round trip whose callback came back to the wrong browser,
    /// and tells a sign-up's poller.
    async fn abandon(&self, claims: &StateClaims) {
        let store = &self.accounts;
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
    /// the state is checked first, so a forged or misrouted callback leaves
    /// it usable; one that reached the wrong browser spends it.
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
                self.accounts
                    .signup(&TokenHash::from_stored(hash.clone()))
                    .await?
                    .ok_or(ConnectError::InvalidState)?,
            ),
            None => None,
        };
        let now = now_ms();
        let stored = self
            .accounts
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
                .accounts
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
                    .accounts
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
        self.accounts.publish_to_user(
            &user.realm_id,
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
                        self.accounts.public_url()
                    )
                }),
                provider: provider.to_string(),
            },
        }
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
            .accounts
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
        match self.accounts.put_provider_connection(&connection).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(ConnectError::IdentityTaken(
                self.provider(provider)?.spec.display_name.clone(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The user's connections, without tokens.
    pub async fn connections(&self, user_id: &str) -> Result<Vec<ConnectionInfo>, ConnectError> {
        Ok(self
            .accounts
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
            .accounts
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
        let store = &self.accounts;
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

    /// The default realm (where connections and sign-ups live).
    pub async fn realm(&self) -> Result<Realm, ConnectError> {
        self.default_realm().await
    }

    /// The base URL of a configured environment, for the relay.
    pub fn environment(&self, name: &str) -> Option<&str> {
        self.config.environments.get(name).map(String::as_str)
    }
}
