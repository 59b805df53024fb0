//! Minting tokens: access tokens (JWT), ID tokens (JWT) and opaque refresh
//! tokens, and the Keycloak-shaped token response that carries them.

use crate::keyring::KeyCache;
use crate::OAuthConfig;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};
use std::sync::Arc;
use tessera_core::claims::{AccessClaims, IdClaims, RealmAccess, TYP_ACCESS, TYP_ID};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::random_token;
use tessera_core::time::now_secs;
use tessera_core::{
    Client, MachineTokenRecord, OAuthError, Realm, RefreshTokenRecord, Session, SigningAlg,
    TokenHash, User, Workspace,
};

/// The token endpoint's success body, field for field as Keycloak sends it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[cfg_attr(feature = "openapi", schema(example = "Bearer"))]
    pub token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(rename = "not-before-policy")]
    pub not_before_policy: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_state: Option<String>,
    pub scope: String,
}

/// Who a token is about.
pub enum Subject<'a> {
    User(&'a User),
    /// A confidential client acting as itself (client_credentials).
    ServiceAccount(&'a Client),
}

/// A fresh refresh token: the secret for the client, the record for the store.
pub struct NewRefreshToken {
    pub secret: String,
    pub record: RefreshTokenRecord,
}

/// A new OAuth session of `user` at `client`, starting `now` and living the
/// realm's session lifetime, signed in `now` from where `meta` says. Grants
/// override what differs (id, device, SSO session, auth time).
pub fn new_session(
    realm: &Realm,
    user: &User,
    client: &Client,
    scope: String,
    meta: &tessera_store::ClientMeta,
    now: i64,
) -> Session {
    Session {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        user_id: user.id.clone(),
        client_id: client.id.clone(),
        device_id: None,
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
        context_name: None,
        origin: None,
        sso_session_id: None,
        scope,
        auth_time: now,
        created_at: now,
        last_used_at: now,
        expires_at: now + realm.session_max_lifespan_secs * 1000,
        revoked_at: None,
    }
}

/// 256 bits, URL-safe: the opaque refresh-token format.
pub fn new_refresh_token(session: &Session, now_ms: i64) -> NewRefreshToken {
    let secret = random_token(32);
    NewRefreshToken {
        record: RefreshTokenRecord {
            hash: TokenHash::of(&secret),
            session_id: session.id.clone(),
            created_at: now_ms,
            expires_at: session.expires_at,
            rotated_at: None,
        },
        secret,
    }
}

/// Everything a grant decided, for issuance.
pub struct Issue<'a> {
    pub realm: &'a Realm,
    pub client: &'a Client,
    pub subject: Subject<'a>,
    /// The session the tokens belong to (none for client_credentials).
    pub session: Option<&'a Session>,
    pub refresh: Option<&'a NewRefreshToken>,
    pub scope: &'a ScopeSet,
    pub nonce: Option<String>,
}

impl<'a> Issue<'a> {
    /// A user's tokens: their session and the refresh token just stored for
    /// it (every user grant ends here; `nonce` is set by the code grant).
    pub fn for_user(
        realm: &'a Realm,
        client: &'a Client,
        user: &'a User,
        session: &'a Session,
        refresh: &'a NewRefreshToken,
        scope: &'a ScopeSet,
    ) -> Self {
        Self {
            realm,
            client,
            subject: Subject::User(user),
            session: Some(session),
            refresh: Some(refresh),
            scope,
            nonce: None,
        }
    }
}

/// Signs what the server hands out. Every token minted anywhere (grants,
/// consent logins, sign-ups, machine tokens) is signed here.
#[derive(Clone)]
pub struct Minter {
    pub(crate) config: Arc<OAuthConfig>,
    pub(crate) keys: Arc<KeyCache>,
}

impl Minter {
    /// Signs the access (and, with `openid`, ID) token and assembles the response.
    pub async fn token_response(&self, issue: Issue<'_>) -> Result<TokenResponse, OAuthError> {
        let Issue {
            realm,
            client,
            subject,
            session,
            refresh,
            scope,
            nonce,
        } = issue;
        let keys = self.keys.realm_keys(realm).await?;
        let now = now_secs();
        let exp = now + realm.access_token_lifespan_secs;
        let iss = self.config.issuer(&realm.name);
        let sid = session.map(|s| s.id.clone());
        let mut claims = AccessClaims {
            exp,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            iss: iss.clone(),
            aud: client.client_id.clone(),
            sub: String::new(),
            typ: TYP_ACCESS.to_string(),
            azp: client.client_id.clone(),
            sid: sid.clone(),
            session_state: sid.clone(),
            scope: scope.to_param(),
            preferred_username: None,
            email: None,
            email_verified: None,
            name: None,
            given_name: None,
            family_name: None,
            realm_access: None,
        };
        match &subject {
            Subject::User(u) => {
                claims.sub = u.id.clone();
                claims.preferred_username = Some(u.username.clone());
                if scope.contains("email") {
                    claims.email = u.email.clone();
                    claims.email_verified = Some(u.email_verified);
                }
                if scope.contains("profile") {
                    claims.name = u.full_name();
                    claims.given_name = u.first_name.clone();
                    claims.family_name = u.last_name.clone();
                }
                claims.realm_access = Some(RealmAccess {
                    roles: u.roles.clone(),
                });
            }
            Subject::ServiceAccount(c) => {
                claims.sub = c.id.clone();
                claims.preferred_username =
                    Some(format!("service-account-{}", c.client_id.to_lowercase()));
            }
        }
        let access_token = keys.signer.sign_jwt(&claims, None);

        let id_token = match (&subject, session) {
            (Subject::User(u), Some(s)) if scope.contains("openid") => {
                let id = IdClaims {
                    exp,
                    iat: now,
                    auth_time: s.auth_time / 1000,
                    jti: uuid::Uuid::new_v4().to_string(),
                    iss,
                    aud: client.client_id.clone(),
                    sub: u.id.clone(),
                    typ: TYP_ID.to_string(),
                    azp: client.client_id.clone(),
                    nonce,
                    sid: Some(s.id.clone()),
                    session_state: Some(s.id.clone()),
                    at_hash: Some(at_hash(keys.signer.alg(), &access_token)),
                    preferred_username: Some(u.username.clone()),
                    email: claims.email.clone(),
                    email_verified: claims.email_verified,
                    name: claims.name.clone(),
                };
                Some(keys.signer.sign_jwt(&id, None))
            }
            _ => None,
        };

        Ok(TokenResponse {
            access_token,
            expires_in: realm.access_token_lifespan_secs,
            refresh_expires_in: refresh
                .map(|r| ((r.record.expires_at / 1000) - now).max(0))
                .unwrap_or(0),
            refresh_token: refresh.map(|r| r.secret.clone()),
            token_type: "Bearer",
            id_token,
            not_before_policy: 0,
            session_state: sid,
            scope: scope.to_param(),
        })
    }
}

impl Minter {
    /// Signs a consent access token (Verida's; `typ: Consent`) with the
    /// realm's key.
    pub async fn consent_access_token(
        &self,
        realm: &Realm,
        claims: &tessera_core::claims::ConsentAccessClaims,
    ) -> Result<String, OAuthError> {
        let keys = self.keys.realm_keys(realm).await?;
        Ok(keys.signer.sign_jwt(claims, None))
    }
}

/// Che's machine-token claims, exactly.
#[derive(Serialize)]
struct MachineClaims<'a> {
    wsid: &'a str,
    uid: &'a str,
    uname: &'a str,
    jti: &'a str,
}

impl Minter {
    /// Signs the machine token `record` stands for (RS512 under the realm's
    /// machine key; deterministic, so the same record gives the same string).
    pub async fn machine_token(
        &self,
        realm: &Realm,
        ws: &Workspace,
        user: &User,
        record: &MachineTokenRecord,
    ) -> Result<String, OAuthError> {
        let keys = self.keys.machine_keys(realm).await?;
        let claims = MachineClaims {
            wsid: &ws.id,
            uid: &user.id,
            uname: &user.username,
            jti: &record.jti,
        };
        Ok(keys
            .signer
            .sign_jwt(&claims, Some(tessera_verify::MACHINE_TOKEN_KIND)))
    }
}

/// OIDC Core §3.1.3.6: left half of the hash of the access token, with the
/// hash the signing algorithm uses (SHA-512 for EdDSA, as Keycloak does).
fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    let digest: Vec<u8> = match alg {
        SigningAlg::RS512 | SigningAlg::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
        _ => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}
