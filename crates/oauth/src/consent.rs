//! Public-key consent login, Verida's storage-node design. A wallet signs a
//! consent message with its DID's key; the server answers with an opaque
//! refresh token bound to (DID, context, device) and short access tokens a
//! database can verify with the JWKS alone.
//!
//! Each authentication is a session of the DID's user (one user per DID in
//! the realm) under the realm's `tessera-consent` client, carrying the
//! context name and the requesting app's origin, so it appears (and can be
//! revoked) wherever sessions are listed. Every operation checks everything
//! it can before it writes: a refused request changes nothing.

use crate::issue::new_refresh_token;
use crate::keyring::KeyCache;
use crate::rotation::Rotated;
use crate::{OAuthConfig, Sessions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera_consent::DidResolver;
use tessera_consent::{
    authenticate_message, database_username, invalidate_device_message, verify_signature,
    ContextName, Did, DidError, SignatureError,
};
use tessera_core::claims::{ConsentAccessClaims, TYP_CONSENT};
use tessera_core::secret::random_token;
use tessera_core::time::now_ms;
use tessera_core::{Client, ConsentChallenge, OAuthError, Realm, Session, TokenHash, User};
use tessera_store::{ClientMeta, StoreError};
use tessera_store::{ClientStore, ConsentStore, RefreshTokenStore, SessionStore, UserStore};

/// The client consent sessions belong to (created in each realm on first use).
pub const CONSENT_CLIENT_ID: &str = "tessera-consent";
/// The user attribute holding a DID user's DID.
pub const DID_ATTRIBUTE: &str = "did";
/// `typ` of auth JWTs (challenges).
const TYP_CHALLENGE: &str = "ConsentChallenge";
const MAX_DEVICE_ID: usize = 256;
const MAX_SIGNATURE: usize = 256;
const MAX_ORIGIN: usize = 512;
const MAX_REFRESH_TOKEN: usize = 512;
const MAX_AUTH_JWT: usize = 4096;

/// Why a consent call failed; the HTTP layer turns it into Verida's
/// `{status: "fail", message}` with the matching status code.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// 400: the request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: a signature, auth JWT or refresh token did not check out.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: valid credentials, but the account may not sign in.
    #[error("{0}")]
    Forbidden(String),
    /// 5xx: not the caller's fault.
    #[error("{0}")]
    Server(OAuthError),
}

impl From<OAuthError> for ConsentError {
    fn from(e: OAuthError) -> Self {
        Self::Server(e)
    }
}

impl From<StoreError> for ConsentError {
    fn from(e: StoreError) -> Self {
        Self::Server(OAuthError::server_error(e))
    }
}

impl From<DidError> for ConsentError {
    fn from(e: DidError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

fn unauthorized(msg: &str) -> ConsentError {
    ConsentError::Unauthorized(msg.to_string())
}

const INVALID_REFRESH: &str = "Invalid refresh token";

/// `generateAuthJwt`'s answer.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuthJwt {
    pub auth_request_id: String,
    pub auth_jwt: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChallengeClaims {
    iss: String,
    sub: String,
    #[serde(rename = "contextName")]
    context_name: String,
    #[serde(rename = "authRequestId")]
    auth_request_id: String,
    typ: String,
    iat: i64,
    exp: i64,
}

/// `authenticate`'s input.
#[derive(Debug)]
pub struct AuthenticateRequest<'a> {
    pub auth_jwt: &'a str,
    pub did: &'a str,
    pub context_name: &'a str,
    pub signature: &'a str,
    pub device_id: &'a str,
    /// The app that asked, as the Vault states it (must be an origin).
    pub origin: Option<&'a str>,
    /// The request's `Origin` header: used when `origin` is absent, and
    /// ignored (not an error) when it is not an http(s) origin, e.g. a
    /// browser extension's.
    pub origin_header: Option<&'a str>,
}

/// Tokens for an authenticated (DID, context, device).
#[derive(Debug)]
pub struct ConsentTokens {
    pub refresh_token: String,
    pub access_token: String,
    pub host: String,
}

/// A refresh token's session, checked against the caller's claims.
struct Bound {
    session: Session,
    did: Did,
    context: ContextName,
    /// When the token was spent, if it was.
    spent_at: Option<i64>,
}

/// DID consent logins (Verida): challenges, signed consent, the tokens
/// they earn and the devices they connect.
#[derive(Clone)]
pub struct ConsentLogin {
    pub(crate) config: Arc<OAuthConfig>,
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) client_db: Arc<dyn ClientStore>,
    pub(crate) user_db: Arc<dyn UserStore>,
    pub(crate) consent_db: Arc<dyn ConsentStore>,
    pub(crate) session_db: Arc<dyn SessionStore>,
    pub(crate) refresh_db: Arc<dyn RefreshTokenStore>,
    pub(crate) rotation: crate::rotation::Rotation,
    /// Finds the key behind a DID.
    pub(crate) resolver: Arc<dyn DidResolver>,
    pub(crate) sessions: Sessions,
    pub(crate) minter: crate::Minter,
}

impl ConsentLogin {
    /// The session if it is active and in `realm`.
    pub async fn active_session(
        &self,
        realm: &Realm,
        session_id: &str,
    ) -> Result<Option<Session>, OAuthError> {
        Ok(self
            .session_db
            .session(session_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|s| s.realm_id == realm.id && s.is_active(now_ms())))
    }

    /// The storage endpoint apps are sent to.
    pub fn consent_host(&self) -> String {
        self.config
            .consent
            .host
            .clone()
            .unwrap_or_else(|| self.config.public_url.clone())
    }

    fn challenge_key(&self, realm: &Realm) -> tessera_keys::MacKey {
        self.keys
            .master()
            .mac_key(&format!("consent-challenge/{}", realm.id))
    }

    /// `generateAuthJwt(did, contextName)`: a challenge valid for 60 s and
    /// accepted once. It is a MAC'd JWT (per-realm key); only its answer is
    /// recorded, in `authenticate`.
    pub async fn generate_auth_jwt(
        &self,
        realm: &Realm,
        did: &str,
        context_name: &str,
    ) -> Result<AuthJwt, ConsentError> {
        if let Some(why) = crate::self_service::refusal(realm, None) {
            return Err(ConsentError::Forbidden(why.into()));
        }
        let did = Did::parse(did)?;
        // Refuse DIDs we could never verify before handing out a challenge.
        self.resolver.resolve(&did)?;
        let context = ContextName::parse(context_name)?;
        let auth_request_id = random_token(32);
        let now = now_ms();
        let ttl_ms = self.config.consent.challenge_ttl_secs * 1000;
        // Stateless until answered: asking for a challenge writes nothing.
        let auth_jwt = self.challenge_key(realm).sign_jwt(&ChallengeClaims {
            iss: self.config.issuer(&realm.name),
            sub: did.as_str().to_string(),
            context_name: context.as_str().to_string(),
            auth_request_id: auth_request_id.clone(),
            typ: TYP_CHALLENGE.into(),
            iat: now / 1000,
            exp: (now + ttl_ms) / 1000,
        });
        Ok(AuthJwt {
            auth_request_id,
            auth_jwt,
        })
    }

    /// `authenticate(authJwt, did, contextName, signature, deviceId)`.
    pub async fn consent_authenticate(
        &self,
        realm: &Realm,
        req: AuthenticateRequest<'_>,
        meta: &ClientMeta,
    ) -> Result<ConsentTokens, ConsentError> {
        let did = Did::parse(req.did)?;
        let context = ContextName::parse(req.context_name)?;
        let device_id = device_id(req.device_id)?;
        let origin = match (req.origin, req.origin_header) {
            (Some(stated), _) => Some(origin(stated)?),
            (None, Some(header)) => origin(header).ok(),
            (None, None) => None,
        };
        let key = self.resolver.resolve(&did)?;
        check_signature_shape(req.signature)?;
        if req.auth_jwt.len() > MAX_AUTH_JWT {
            return Err(unauthorized("Invalid auth JWT"));
        }
        let claims: ChallengeClaims = self
            .challenge_key(realm)
            .verify_jwt(req.auth_jwt)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .filter(|c: &ChallengeClaims| {
                c.typ == TYP_CHALLENGE && c.iss == self.config.issuer(&realm.name)
            })
            .ok_or_else(|| unauthorized("Invalid auth JWT"))?;
        let now = now_ms();
        if claims.exp * 1000 <= now {
            return Err(unauthorized("Auth JWT has expired"));
        }
        if claims.sub != did.as_str() || claims.context_name != context.as_str() {
            return Err(unauthorized(
                "Auth JWT was issued for another DID or context",
            ));
        }
        let message = authenticate_message(&context, &did, &claims.auth_request_id);
        verify_signature(&key, &message, req.signature).map_err(signature_error)?;
        // Refusals that depend on the account come before the challenge is spent.
        let existing = self.find_did_user(realm, &did).await?;
        if let Some(why) = crate::self_service::refusal(realm, existing.as_ref()) {
            return Err(ConsentError::Forbidden(why.into()));
        }
        // The signature is good: spend the challenge (exactly once).
        let fresh = self
            .consent_db
            .spend_challenge(&ConsentChallenge {
                hash: TokenHash::of(&claims.auth_request_id),
                realm_id: realm.id.clone(),
                did: did.as_str().to_string(),
                context_name: context.as_str().to_string(),
                created_at: now,
                expires_at: claims.exp * 1000,
            })
            .await?;
        if !fresh {
            return Err(unauthorized("Auth JWT has already been used"));
        }
        let user = match existing {
            Some(user) => user,
            None => self.create_did_user(realm, &did).await?,
        };
        let client = self.consent_client(realm).await?;
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            realm_id: realm.id.clone(),
            user_id: user.id.clone(),
            client_id: client.id.clone(),
            device_id: Some(device_id.to_string()),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            context_name: Some(context.as_str().to_string()),
            origin,
            sso_session_id: None,
            scope: String::new(),
            auth_time: now,
            created_at: now,
            last_used_at: now,
            expires_at: now + self.config.consent.refresh_token_ttl_secs * 1000,
            revoked_at: None,
        };
        let refresh = new_refresh_token(&session, now);
        self.session_db
            .create_session(&session, &refresh.record)
            .await?;
        tracing::info!(realm = %realm.name, session = %session.id, did = %did, "consent login");
        Ok(ConsentTokens {
            access_token: self
                .consent_access_token(realm, &session, &did, &context)
                .await?,
            refresh_token: refresh.secret,
            host: self.consent_host(),
        })
    }

    /// `connect(refreshToken, did, contextName)` (the seed's `get`): a new
    /// access token and the storage endpoint.
    pub async fn consent_connect(
        &self,
        realm: &Realm,
        refresh_token: &str,
        did: &str,
        context_name: &str,
        meta: &ClientMeta,
    ) -> Result<(String, String), ConsentError> {
        let bound = self
            .bound_refresh_token(realm, refresh_token, Some(did), context_name)
            .await?;
        let bound = self.unspent(bound).await?;
        let session = self
            .session_db
            .touch_session(&bound.session.id, now_ms(), meta)
            .await?
            .ok_or_else(|| unauthorized(INVALID_REFRESH))?;
        let access = self
            .consent_access_token(realm, &session, &bound.did, &bound.context)
            .await?;
        Ok((access, self.consent_host()))
    }

    /// `regenerateRefreshToken(refreshToken, [did,] contextName)`: the old
    /// token dies at once; the new one has a fresh 30 days.
    pub async fn consent_regenerate(
        &self,
        realm: &Realm,
        refresh_token: &str,
        did: Option<&str>,
        context_name: &str,
        meta: &ClientMeta,
    ) -> Result<String, ConsentError> {
        let bound = self
            .bound_refresh_token(realm, refresh_token, did, context_name)
            .await?;
        let now = now_ms();
        // A retry after a lost answer gets the successor that answer held.
        let rotated = match bound.spent_at {
            Some(spent_at) => {
                self.rotation
                    .again(refresh_token, bound.session.id.clone(), spent_at, now)
                    .await?
            }
            None => {
                let expires_at = now + self.config.consent.refresh_token_ttl_secs * 1000;
                self.rotation
                    .rotate(refresh_token, &bound.session, expires_at, now, meta)
                    .await?
            }
        };
        match rotated {
            Rotated::Successor { next, .. } => Ok(next.secret),
            Rotated::Spent {
                session_id,
                rotated_at,
            } => {
                // Spent and its successor used (or lost a race with another
                // rotation): the same reuse rule as the refresh grant.
                self.sessions
                    .refresh_token_reused(&session_id, rotated_at)
                    .await?;
                Err(unauthorized("Refresh token already used"))
            }
            Rotated::Unknown | Rotated::Inactive => Err(unauthorized(INVALID_REFRESH)),
        }
    }

    /// A spent token serves nothing but a retried regeneration: elsewhere it
    /// is refused, and past the reuse grace window it ends its session.
    async fn unspent(&self, bound: Bound) -> Result<Bound, ConsentError> {
        if let Some(spent) = bound.spent_at {
            self.sessions
                .refresh_token_reused(&bound.session.id, spent)
                .await?;
            return Err(unauthorized("Refresh token already used"));
        }
        Ok(bound)
    }

    /// `invalidateDeviceId(did, contextName, deviceId, signature)`: ends every
    /// session of that device for the DID and context. Returns how many.
    pub async fn consent_invalidate_device(
        &self,
        realm: &Realm,
        did: &str,
        context_name: &str,
        device_id_raw: &str,
        signature: &str,
    ) -> Result<usize, ConsentError> {
        let did = Did::parse(did)?;
        let context = ContextName::parse(context_name)?;
        let device_id = device_id(device_id_raw)?;
        let key = self.resolver.resolve(&did)?;
        check_signature_shape(signature)?;
        let message = invalidate_device_message(&context, &did, device_id);
        verify_signature(&key, &message, signature).map_err(signature_error)?;
        let Some(user) = self
            .user_db
            .user_by_username(&realm.id, &did_username(&did))
            .await?
            .filter(|u| is_did_user(u, &did))
        else {
            return Ok(0);
        };
        let ended = self
            .consent_db
            .revoke_device_sessions(&realm.id, &user.id, context.as_str(), device_id, now_ms())
            .await?;
        let n = ended.len();
        tracing::info!(realm = %realm.name, did = %did, sessions = n, "device invalidated");
        self.sessions.announce_ended(&realm.id, &user.id, ended);
        Ok(n)
    }

    /// `isTokenValid(refreshToken, contextName)`: the token's expiry (Unix
    /// seconds) if it is live and belongs to that context.
    pub async fn consent_token_expiry(
        &self,
        realm: &Realm,
        refresh_token: &str,
        context_name: &str,
    ) -> Result<i64, ConsentError> {
        let bound = self
            .bound_refresh_token(realm, refresh_token, None, context_name)
            .await?;
        let bound = self.unspent(bound).await?;
        Ok(bound.session.expires_at / 1000)
    }

    /// Finds a live consent refresh token (spent or not: see `unspent`) and
    /// checks it belongs to this realm, context and (when given) DID.
    async fn bound_refresh_token(
        &self,
        realm: &Realm,
        refresh_token: &str,
        did: Option<&str>,
        context_name: &str,
    ) -> Result<Bound, ConsentError> {
        let context = ContextName::parse(context_name)?;
        let did = did.map(Did::parse).transpose()?;
        if refresh_token.is_empty() || refresh_token.len() > MAX_REFRESH_TOKEN {
            return Err(unauthorized(INVALID_REFRESH));
        }
        let now = now_ms();
        let (record, session) = self
            .refresh_db
            .refresh_token_with_session(&TokenHash::of(refresh_token))
            .await?
            .filter(|(r, s)| r.expires_at > now && s.realm_id == realm.id && s.is_active(now))
            .ok_or_else(|| unauthorized(INVALID_REFRESH))?;
        if session.context_name.as_deref() != Some(context.as_str()) {
            return Err(unauthorized("Refresh token was issued for another context"));
        }
        let user = self
            .user_db
            .user(&realm.id, &session.user_id)
            .await?
            .ok_or_else(|| unauthorized(INVALID_REFRESH))?;
        if !user.enabled {
            return Err(ConsentError::Forbidden("Account is disabled".into()));
        }
        if let Some(why) = crate::self_service::refusal(realm, Some(&user)) {
            return Err(ConsentError::Forbidden(why.into()));
        }
        let token_did = user
            .attributes
            .get(DID_ATTRIBUTE)
            .and_then(|v| v.first())
            .ok_or_else(|| unauthorized(INVALID_REFRESH))?;
        let token_did = Did::parse(token_did)?;
        if did.is_some_and(|d| d != token_did) {
            return Err(unauthorized("Refresh token was issued for another DID"));
        }
        Ok(Bound {
            session,
            did: token_did,
            context,
            spent_at: record.rotated_at,
        })
    }

    async fn consent_access_token(
        &self,
        realm: &Realm,
        session: &Session,
        did: &Did,
        context: &ContextName,
    ) -> Result<String, ConsentError> {
        let now = now_ms() / 1000;
        let claims = ConsentAccessClaims {
            exp: now + self.config.consent.access_token_ttl_secs,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            iss: self.config.issuer(&realm.name),
            aud: CONSENT_CLIENT_ID.into(),
            sub: database_username(did, context),
            typ: TYP_CONSENT.into(),
            token_type: "access".into(),
            azp: CONSENT_CLIENT_ID.into(),
            sid: session.id.clone(),
            did: did.as_str().to_string(),
            context_name: context.as_str().to_string(),
        };
        Ok(self.minter.consent_access_token(realm, &claims).await?)
    }

    /// The DID's user in this realm, if it exists; refused (403) if it is
    /// disabled or the username belongs to an account that is not this DID's.
    async fn find_did_user(&self, realm: &Realm, did: &Did) -> Result<Option<User>, ConsentError> {
        let Some(user) = self
            .user_db
            .user_by_username(&realm.id, &did_username(did))
            .await?
        else {
            return Ok(None);
        };
        if !is_did_user(&user, did) {
            return Err(ConsentError::Forbidden(
                "This DID's username belongs to another account".into(),
            ));
        }
        if !user.enabled {
            return Err(ConsentError::Forbidden("Account is disabled".into()));
        }
        Ok(Some(user))
    }

    /// Creates the DID's user on its first sign-in (or reads the one a racing
    /// request just created).
    async fn create_did_user(&self, realm: &Realm, did: &Did) -> Result<User, ConsentError> {
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            realm_id: realm.id.clone(),
            username: did_username(did),
            email: None,
            email_verified: false,
            first_name: None,
            last_name: None,
            enabled: true,
            password_hash: None,
            password_temporary: false,
            roles: vec![],
            attributes: BTreeMap::from([(
                DID_ATTRIBUTE.to_string(),
                vec![did.as_str().to_string()],
            )]),
            created_at: now_ms(),
        };
        match self.user_db.create_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(_)) => {
                self.find_did_user(realm, did).await?.ok_or_else(|| {
                    ConsentError::Server(OAuthError::server_error(
                        "could not create the DID's user",
                    ))
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The realm's consent client: public, with every OAuth flow off, so its
    /// sessions can only be used through the consent API.
    async fn consent_client(&self, realm: &Realm) -> Result<Client, ConsentError> {
        for _ in 0..2 {
            if let Some(c) = self
                .client_db
                .client_by_client_id(&realm.id, CONSENT_CLIENT_ID)
                .await?
            {
                return Ok(c);
            }
            let client = Client {
                id: uuid::Uuid::new_v4().to_string(),
                realm_id: realm.id.clone(),
                client_id: CONSENT_CLIENT_ID.into(),
                name: Some("Public-key consent login".into()),
                enabled: true,
                public_client: true,
                secret_hash: None,
                secret_generation: 0,
                secret_generated: false,
                redirect_uris: vec![],
                web_origins: vec![],
                standard_flow_enabled: false,
                direct_access_grants_enabled: false,
                service_accounts_enabled: false,
                attributes: BTreeMap::new(),
                created_at: now_ms(),
            };
            match self.client_db.create_client(&client).await {
                Ok(()) => return Ok(client),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ConsentError::Server(OAuthError::server_error(
            "could not create the consent client",
        )))
    }
}

/// The DID user's username: the DID itself when it is already lower case
/// (every Ethereum-address DID, after normalisation), else (`did:key`, whose
/// base58 is case-sensitive while usernames are not) a digest of it.
pub fn did_username(did: &Did) -> String {
    let s = did.as_str();
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        format!("did-{}", &TokenHash::of(s).as_str()[..40])
    } else {
        s.to_string()
    }
}

fn is_did_user(user: &User, did: &Did) -> bool {
    user.attributes
        .get(DID_ATTRIBUTE)
        .is_some_and(|v| v.len() == 1 && v[0] == did.as_str())
}

fn device_id(raw: &str) -> Result<&str, ConsentError> {
    let ok =
        !raw.trim().is_empty() && raw.len() <= MAX_DEVICE_ID && !raw.chars().any(char::is_control);
    if ok {
        Ok(raw)
    } else {
        Err(ConsentError::BadRequest(format!(
            "deviceId must be 1-{MAX_DEVICE_ID} characters without control characters"
        )))
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing more.
fn origin(raw: &str) -> Result<String, ConsentError> {
    let bad = || ConsentError::BadRequest("origin must be scheme://host[:port]".into());
    if raw.len() > MAX_ORIGIN {
        return Err(bad());
    }
    let (scheme, rest) = raw.split_once("://").ok_or_else(bad)?;
    let ok = matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(bad())
    }
}

/// A signature that does not decode is bad input (400); one that decodes
/// but was not made by the DID's key is a failed authentication (401).
fn signature_error(e: SignatureError) -> ConsentError {
    match e {
        SignatureError::Mismatch => ConsentError::Unauthorized(format!("Invalid signature: {e}")),
        other => ConsentError::BadRequest(format!("Malformed signature: {other}")),
    }
}

/// Length is checked before any decoding work.
fn check_signature_shape(signature: &str) -> Result<(), ConsentError> {
    if signature.is_empty() || signature.len() > MAX_SIGNATURE {
        return Err(ConsentError::BadRequest(
            "signature must be a 65-byte Ethereum or 64-byte Ed25519 signature".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            origin("https://App.Example:8443").ok().as_deref(),
            Some("https://app.example:8443")
        );
        for bad in [
            "app.example",
            "javascript://x",
            "https://",
            "https://a/b",
            "https://a?b",
            "https://u@a",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn did_key_usernames_do_not_fold_case() {
        let a =
            Did::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").expect("did");
        let b =
            Did::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2dok").expect("did");
        assert_ne!(did_username(&a), did_username(&b));
        assert_eq!(did_username(&a), did_username(&a));
        let e = Did::parse("did:ethr:0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED").expect("did");
        assert_eq!(
            did_username(&e),
            "did:ethr:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
        );
    }
}
