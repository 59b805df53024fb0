//! One upstream provider at run time: the authorization URL, the
//! server-to-server code exchange, who the user is there, refresh and
//! revocation. OIDC providers go through `openidconnect` (discovery, ID token
//! checked against the provider's JWKS, nonce and `at_hash`); the others
//! through `oauth2` plus a userinfo call. The HTTP client follows no
//! redirects (a provider answering with one is an error, not a hop).

use crate::config::{Fields, ProviderKind, ProviderSpec};
use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RevocationUrl, Scope, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AdditionalProviderMetadata, AuthenticationFlow, IssuerUrl, Nonce,
    ProviderMetadata,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tessera_core::time::now_ms;
use tokio::sync::RwLock;
use url::Url;

/// Discovery's `revocation_endpoint`, which the core metadata type omits.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RevocationMetadata {
    #[serde(default)]
    revocation_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for RevocationMetadata {}

type Metadata = ProviderMetadata<
    RevocationMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Why a provider call failed. The text is for logs and error pages; it
/// never contains a token or the client secret.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider discovery failed: {0}")]
    Discovery(String),
    #[error("the provider refused the code: {0}")]
    Exchange(String),
    #[error("the provider's ID token is not valid: {0}")]
    IdToken(String),
    #[error("the provider's userinfo failed: {0}")]
    Userinfo(String),
    #[error("the provider refused the refresh token: {0}")]
    Refresh(String),
    #[error("revocation failed: {0}")]
    Revocation(String),
}

/// Who the user is at the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub username: Option<String>,
}

/// The provider's tokens, as stored (sealed).
#[derive(Clone, Serialize, Deserialize)]
pub struct ProviderTokens {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// What a code exchange produced.
#[derive(Serialize, Deserialize)]
pub struct Granted {
    pub tokens: ProviderTokens,
    pub expires_at: Option<i64>,
    pub scopes: Vec<String>,
    pub identity: Identity,
}

/// What the authorize redirect needs remembered for the callback.
#[derive(Serialize, Deserialize)]
pub struct Pending {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// The endpoints in effect (discovered, for OIDC).
struct Endpoints {
    authorize: Url,
    token: Url,
    revocation: Option<Url>,
}

pub struct Provider {
    pub spec: ProviderSpec,
    http: reqwest::Client,
    /// The discovery document (with the JWKS) and when it was fetched.
    discovered: RwLock<Option<(Arc<Metadata>, Instant)>>,
}

/// How long discovered metadata and keys are trusted before refetching.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

impl Provider {
    pub fn new(spec: ProviderSpec, http: reqwest::Client) -> Self {
        Self {
            spec,
            http,
            discovered: RwLock::new(None),
        }
    }

    pub fn is_oidc(&self) -> bool {
        self.spec.kind == ProviderKind::Oidc
    }

    /// Discovery, cached for an hour; a failure is retried on the next
    /// request, and `force` refetches (the provider rotated its keys).
    async fn metadata(&self, force: bool) -> Result<Arc<Metadata>, ProviderError> {
        if !force {
            if let Some((m, at)) = &*self.discovered.read().await {
                if at.elapsed() < DISCOVERY_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let issuer = self
            .spec
            .issuer
            .clone()
            .ok_or_else(|| ProviderError::Discovery("no issuer".into()))?;
        // Exactly as configured: the document's `issuer` must match it.
        let issuer = IssuerUrl::new(issuer).map_err(|e| ProviderError::Discovery(e.to_string()))?;
        let m = Arc::new(
            Metadata::discover_async(issuer, &self.http)
                .await
                .map_err(|e| ProviderError::Discovery(error_chain(&e)))?,
        );
        *self.discovered.write().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    async fn endpoints(&self) -> Result<Endpoints, ProviderError> {
        if self.is_oidc() {
            let m = self.metadata(false).await?;
            let token = m
                .token_endpoint()
                .ok_or_else(|| ProviderError::Discovery("no token_endpoint".into()))?;
            let revocation = self.spec.revocation_url.clone().or_else(|| {
                m.additional_metadata()
                    .revocation_endpoint
                    .as_deref()
                    .and_then(|u| Url::parse(u).ok())
            });
            return Ok(Endpoints {
                authorize: m.authorization_endpoint().url().clone(),
                token: token.url().clone(),
                revocation,
            });
        }
        let missing = || ProviderError::Discovery("endpoints not configured".into());
        Ok(Endpoints {
            authorize: self.spec.authorize_url.clone().ok_or_else(missing)?,
            token: self.spec.token_url.clone().ok_or_else(missing)?,
            revocation: self.spec.revocation_url.clone(),
        })
    }

    /// The authorization endpoint as far as known without a network call
    /// (listings, the account page's `form-action`): configured, else
    /// discovered earlier, else the OIDC issuer (usually the same origin).
    pub fn known_authorize_endpoint(&self) -> Option<Url> {
        if let Some(url) = &self.spec.authorize_url {
            return Some(url.clone());
        }
        if let Ok(guard) = self.discovered.try_read() {
            if let Some((m, _)) = &*guard {
                return Some(m.authorization_endpoint().url().clone());
            }
        }
        self.spec.issuer.as_deref().and_then(|i| Url::parse(i).ok())
    }

    fn oauth2_client(
        &self,
        ep: &Endpoints,
        redirect: Option<&str>,
    ) -> Result<
        BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointMaybeSet,
            oauth2::EndpointSet,
        >,
        ProviderError,
    > {
        let bad = |e: oauth2::url::ParseError| ProviderError::Exchange(e.to_string());
        let mut client = BasicClient::new(ClientId::new(self.spec.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(ep.authorize.clone()))
            .set_token_uri(TokenUrl::from_url(ep.token.clone()))
            .set_revocation_url_option(ep.revocation.clone().map(RevocationUrl::from_url));
        if let Some(secret) = &self.spec.client_secret {
            client = client.set_client_secret(secret.clone());
        }
        if let Some(r) = redirect {
            client = client.set_redirect_uri(RedirectUrl::new(r.to_string()).map_err(bad)?);
        }
        Ok(client)
    }

    fn oidc_client(
        &self,
        m: &Metadata,
        redirect: &str,
    ) -> Result<
        CoreClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointMaybeSet,
            oauth2::EndpointMaybeSet,
        >,
        ProviderError,
    > {
        let redirect = openidconnect::RedirectUrl::new(redirect.to_string())
            .map_err(|e| ProviderError::Exchange(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            m.clone(),
            ClientId::new(self.spec.client_id.clone()),
            self.spec.client_secret.clone(),
        )
        .set_redirect_uri(redirect))
    }

    /// Where to send the browser, and what the callback will need.
    pub async fn authorize_url(
        &self,
        redirect: &str,
        state: &str,
    ) -> Result<(Url, Pending), ProviderError> {
        let (challenge, verifier) = if self.spec.pkce {
            let (c, v) = PkceCodeChallenge::new_random_sha256();
            (Some(c), Some(v.secret().clone()))
        } else {
            (None, None)
        };
        if self.is_oidc() {
            let m = self.metadata(false).await?;
            let client = self.oidc_client(&m, redirect)?;
            let nonce = Nonce::new_random();
            let (state, n) = (state.to_string(), nonce.clone());
            let mut req = client.authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                move || n,
            );
            // `openid` is always sent by the library.
            for s in self.spec.scopes.iter().filter(|s| s.as_str() != "openid") {
                req = req.add_scope(Scope::new(s.clone()));
            }
            if let Some(c) = challenge {
                req = req.set_pkce_challenge(c);
            }
            let (url, _, _) = req.url();
            return Ok((
                url,
                Pending {
                    verifier,
                    nonce: Some(nonce.secret().clone()),
                },
            ));
        }
        let ep = self.endpoints().await?;
        let client = self.oauth2_client(&ep, Some(redirect))?;
        let state = state.to_string();
        let mut req = client.authorize_url(move || CsrfToken::new(state));
        for s in &self.spec.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if let Some(c) = challenge {
            req = req.set_pkce_challenge(c);
        }
        let (url, _) = req.url();
        Ok((
            url,
            Pending {
                verifier,
                nonce: None,
            },
        ))
    }

    /// Exchanges the code server-to-server and finds out who the user is.
    pub async fn exchange(
        &self,
        redirect: &str,
        code: &str,
        pending: Pending,
    ) -> Result<Granted, ProviderError> {
        let code = AuthorizationCode::new(code.to_string());
        if self.is_oidc() {
            return self.exchange_oidc(redirect, code, pending).await;
        }
        let ep = self.endpoints().await?;
        let client = self.oauth2_client(&ep, Some(redirect))?;
        let mut req = client.exchange_code(code);
        if let Some(v) = pending.verifier {
            req = req.set_pkce_verifier(PkceCodeVerifier::new(v));
        }
        let resp = req
            .request_async(&self.http)
            .await
            .map_err(|e| ProviderError::Exchange(error_chain(&e)))?;
        let identity = self.userinfo(resp.access_token()).await?;
        Ok(granted(&resp, &self.spec.scopes, identity))
    }

    async fn exchange_oidc(
        &self,
        redirect: &str,
        code: AuthorizationCode,
        pending: Pending,
    ) -> Result<Granted, ProviderError> {
        let mut m = self.metadata(false).await?;
        let resp = {
            let client = self.oidc_client(&m, redirect)?;
            let mut req = client
                .exchange_code(code)
                .map_err(|e| ProviderError::Exchange(e.to_string()))?;
            if let Some(v) = pending.verifier {
                req = req.set_pkce_verifier(PkceCodeVerifier::new(v));
            }
            req.request_async(&self.http)
                .await
                .map_err(|e| ProviderError::Exchange(error_chain(&e)))?
        };
        let id_token = resp
            .extra_fields()
            .id_token()
            .ok_or_else(|| ProviderError::IdToken("no id_token in the token response".into()))?;
        let nonce = Nonce::new(pending.nonce.unwrap_or_default());
        // A token the cached keys cannot verify may be signed with a key
        // the provider rotated in since: check once more with fresh keys.
        if id_token
            .claims(&self.oidc_client(&m, redirect)?.id_token_verifier(), &nonce)
            .is_err()
        {
            m = self.metadata(true).await?;
        }
        let client = self.oidc_client(&m, redirect)?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &nonce)
            .map_err(|e| ProviderError::IdToken(error_chain(&e)))?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| ProviderError::IdToken(e.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| ProviderError::IdToken(e.to_string()))?;
            let actual = AccessTokenHash::from_token(resp.access_token(), alg, key)
                .map_err(|e| ProviderError::IdToken(e.to_string()))?;
            if &actual != expected {
                return Err(ProviderError::IdToken("at_hash does not match".into()));
            }
        }
        let mut identity = Identity {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
            username: claims.preferred_username().map(|u| u.to_string()),
        };
        // Claims the ID token left out (a provider may put them only in
        // userinfo) come from userinfo, which must name the same subject.
        if identity.email.is_none() || identity.name.is_none() {
            if let Ok(req) =
                client.user_info(resp.access_token().clone(), Some(claims.subject().clone()))
            {
                let info: CoreUserInfoClaims = req
                    .request_async(&self.http)
                    .await
                    .map_err(|e| ProviderError::Userinfo(error_chain(&e)))?;
                if identity.email.is_none() {
                    identity.email = info.email().map(|e| e.to_string());
                    identity.email_verified = info.email_verified().unwrap_or(false);
                }
                if identity.name.is_none() {
                    identity.name = info.name().and_then(|n| n.get(None)).map(|n| n.to_string());
                }
                if identity.username.is_none() {
                    identity.username = info.preferred_username().map(|u| u.to_string());
                }
            }
        }
        Ok(granted(&resp, &self.spec.scopes, identity))
    }

    /// `oauth2` providers: the configured userinfo members.
    async fn userinfo(&self, token: &AccessToken) -> Result<Identity, ProviderError> {
        let url = self
            .spec
            .userinfo_url
            .clone()
            .ok_or_else(|| ProviderError::Userinfo("no userinfo_url".into()))?;
        let resp = self
            .http
            .get(url)
            .bearer_auth(token.secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ProviderError::Userinfo(error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(ProviderError::Userinfo(format!("HTTP {}", resp.status())));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| ProviderError::Userinfo(error_chain(&e)))?;
        identity_from(&body, &self.spec.fields)
    }

    /// A new access token from the refresh token.
    pub async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<(ProviderTokens, Option<i64>), ProviderError> {
        let ep = self.endpoints().await?;
        let client = self.oauth2_client(&ep, None)?;
        let token = RefreshToken::new(refresh_token.to_string());
        let resp = client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await
            .map_err(|e| ProviderError::Refresh(error_chain(&e)))?;
        let tokens = ProviderTokens {
            access_token: resp.access_token().secret().clone(),
            // A provider that does not rotate keeps the old one valid.
            refresh_token: Some(
                resp.refresh_token()
                    .map(|r| r.secret().clone())
                    .unwrap_or_else(|| refresh_token.to_string()),
            ),
        };
        Ok((tokens, expiry(resp.expires_in())))
    }

    /// RFC 7009, where the provider has an endpoint for it: the refresh
    /// token (which takes its access tokens with it), then the access token.
    /// Returns false when the provider has no revocation endpoint.
    pub async fn revoke(&self, tokens: &ProviderTokens) -> Result<bool, ProviderError> {
        let ep = self
            .endpoints()
            .await
            .map_err(|e| ProviderError::Revocation(e.to_string()))?;
        let Some(url) = ep.revocation.clone() else {
            return Ok(false);
        };
        let mut revocable = vec![StandardRevocableToken::AccessToken(AccessToken::new(
            tokens.access_token.clone(),
        ))];
        if let Some(r) = &tokens.refresh_token {
            revocable.insert(
                0,
                StandardRevocableToken::RefreshToken(RefreshToken::new(r.clone())),
            );
        }
        let client = self.oauth2_client(&ep, None)?;
        for token in revocable {
            if url.scheme() == "https" {
                client
                    .revoke_token(token)
                    .map_err(|e| ProviderError::Revocation(e.to_string()))?
                    .request_async(&self.http)
                    .await
                    .map_err(|e| ProviderError::Revocation(error_chain(&e)))?;
            } else {
                self.revoke_on_loopback(&url, &token).await?;
            }
        }
        Ok(true)
    }

    /// `oauth2` insists on https revocation endpoints (RFC 7009 §2). A
    /// provider on this machine (development, tests) is reached over plain
    /// http with the same RFC 7009 form; any other http endpoint is refused.
    async fn revoke_on_loopback(
        &self,
        url: &Url,
        token: &StandardRevocableToken,
    ) -> Result<(), ProviderError> {
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if !loopback {
            return Err(ProviderError::Revocation(
                "the revocation endpoint must be https".into(),
            ));
        }
        use oauth2::RevocableToken;
        let mut form = vec![("token", token.secret().to_string())];
        if let Some(hint) = token.type_hint() {
            form.push(("token_type_hint", hint.to_string()));
        }
        let mut req = self.http.post(url.clone());
        match &self.spec.client_secret {
            Some(secret) => {
                req = req.basic_auth(&self.spec.client_id, Some(secret.secret()));
            }
            None => form.push(("client_id", self.spec.client_id.clone())),
        }
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Revocation(error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(ProviderError::Revocation(format!("HTTP {}", resp.status())));
        }
        Ok(())
    }
}

fn expiry(expires_in: Option<Duration>) -> Option<i64> {
    expires_in.map(|d| now_ms() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
}

fn granted(resp: &impl TokenResponse, requested: &[String], identity: Identity) -> Granted {
    Granted {
        tokens: ProviderTokens {
            access_token: resp.access_token().secret().clone(),
            refresh_token: resp.refresh_token().map(|r| r.secret().clone()),
        },
        expires_at: expiry(resp.expires_in()),
        // No `scope` in the response means the requested ones (RFC 6749 §5.1).
        scopes: resp.scopes().map_or_else(
            || requested.to_vec(),
            |s| s.iter().map(|s| s.to_string()).collect(),
        ),
        identity,
    }
}

/// Reads the configured members of a userinfo document. Ids may be numbers
/// (GitHub, GitLab).
pub fn identity_from(body: &serde_json::Value, fields: &Fields) -> Result<Identity, ProviderError> {
    let text = |name: &str| match body.get(name) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let subject = text(&fields.subject).ok_or_else(|| {
        ProviderError::Userinfo(format!("userinfo has no {:?} member", fields.subject))
    })?;
    let email_verified = fields.email_verified.as_deref().is_some_and(|f| {
        matches!(body.get(f), Some(serde_json::Value::Bool(true)))
            || matches!(body.get(f), Some(serde_json::Value::String(s)) if s == "true")
    });
    Ok(Identity {
        subject,
        email: text(&fields.email),
        email_verified,
        name: text(&fields.name),
        username: text(&fields.username),
    })
}

/// An error and its causes on one line (reqwest hides the useful part in
/// `source()`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_members_map_to_an_identity() {
        let fields = Fields {
            subject: "id".into(),
            email: "email".into(),
            email_verified: None,
            name: "name".into(),
            username: "login".into(),
        };
        let id = identity_from(
            &serde_json::json!({"id": 42, "login": "octo", "email": "o@example.test"}),
            &fields,
        )
        .expect("identity");
        assert_eq!(id.subject, "42");
        assert_eq!(id.username.as_deref(), Some("octo"));
        assert!(!id.email_verified, "unverified without a verified member");
        assert!(identity_from(&serde_json::json!({"login": "x"}), &fields).is_err());
        let verified = Fields {
            email_verified: Some("email_verified".into()),
            ..fields
        };
        let id = identity_from(
            &serde_json::json!({"id": "a", "email": "e@x", "email_verified": true}),
            &verified,
        )
        .expect("identity");
        assert!(id.email_verified);
    }
}
