//! The token endpoint as a pipeline of small named steps (node-oidc-provider
//! style): parse the grant into a typed request, authenticate the client,
//! check the client may use the grant, then run the grant. Each grant lives
//! in its own file and reads only the parameters it declares.

mod authorization_code;
mod client_credentials;
mod device_code;
mod password;
mod refresh_token;

use crate::issue::TokenResponse;
use crate::params::Params;
use crate::{ClientAuth, Minter, OAuthConfig, PasswordCheck, Sessions, Verifier};
use std::sync::Arc;
use tessera_core::{Client, OAuthError, OAuthErrorCode, Realm, Secret};
use tessera_store::ClientMeta;
use tessera_store::{BrowserStore, ClientStore, RefreshTokenStore, SessionStore, UserStore};

pub use authorization_code::AuthCodeRequest;
pub use password::PasswordRequest;
pub use refresh_token::RefreshRequest;

/// A token request, parsed once before any grant logic runs.
#[derive(Debug)]
pub enum TokenRequest {
    Password(PasswordRequest),
    ClientCredentials { scope: Option<String> },
    RefreshToken(RefreshRequest),
    AuthorizationCode(AuthCodeRequest),
    DeviceCode { device_code: Secret<String> },
}

/// RFC 8628's grant type URN.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl TokenRequest {
    /// The grant type names this server implements.
    pub const GRANT_TYPES: &'static [&'static str] = &[
        "authorization_code",
        "password",
        "client_credentials",
        "refresh_token",
        DEVICE_CODE_GRANT,
    ];

    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        let scope = params.get("scope").map(str::to_string);
        match params.require("grant_type")? {
            "password" => Ok(Self::Password(PasswordRequest {
                username: params.require("username")?.to_string(),
                password: Secret::new(params.require("password")?.to_string()),
                scope,
                device_id: params.get("device_id").map(str::to_string),
            })),
            "client_credentials" => Ok(Self::ClientCredentials { scope }),
            "refresh_token" => Ok(Self::RefreshToken(RefreshRequest {
                refresh_token: Secret::new(params.require("refresh_token")?.to_string()),
                scope,
            })),
            "authorization_code" => Ok(Self::AuthorizationCode(AuthCodeRequest {
                code: Secret::new(params.require("code")?.to_string()),
                redirect_uri: params.get("redirect_uri").map(str::to_string),
                code_verifier: params.get("code_verifier").map(str::to_string),
            })),
            DEVICE_CODE_GRANT => Ok(Self::DeviceCode {
                device_code: Secret::new(params.require("device_code")?.to_string()),
            }),
            other => Err(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!("unsupported grant_type: {other}"),
            )),
        }
    }

    pub fn grant_type(&self) -> &'static str {
        match self {
            Self::Password(_) => "password",
            Self::ClientCredentials { .. } => "client_credentials",
            Self::RefreshToken(_) => "refresh_token",
            Self::AuthorizationCode(_) => "authorization_code",
            Self::DeviceCode { .. } => "device_code",
        }
    }

    /// May this client use this grant at all?
    fn check_allowed(&self, client: &Client) -> Result<(), OAuthError> {
        let allowed = match self {
            Self::Password(_) => client.direct_access_grants_enabled,
            Self::ClientCredentials { .. } => {
                !client.public_client && client.service_accounts_enabled
            }
            Self::RefreshToken(_) => true,
            Self::AuthorizationCode(_) => client.standard_flow_enabled,
            Self::DeviceCode { .. } => crate::browser::device::device_grant_enabled(client),
        };
        if allowed {
            Ok(())
        } else {
            Err(OAuthError::unauthorized_client(format!(
                "client is not allowed to use the {} grant",
                self.grant_type()
            )))
        }
    }
}

/// The token endpoint: its grants, and userinfo, introspection, revocation
/// and logout by refresh token (`protocol.rs`).
#[derive(Clone)]
pub struct TokenEndpoint {
    pub(crate) config: Arc<OAuthConfig>,
    pub(crate) client_db: Arc<dyn ClientStore>,
    pub(crate) user_db: Arc<dyn UserStore>,
    /// Authorization and device codes.
    pub(crate) browser_db: Arc<dyn BrowserStore>,
    pub(crate) session_db: Arc<dyn SessionStore>,
    pub(crate) refresh_db: Arc<dyn RefreshTokenStore>,
    pub(crate) rotation: crate::rotation::Rotation,
    pub(crate) client_auth: ClientAuth,
    pub(crate) sessions: Sessions,
    pub(crate) verifier: Verifier,
    pub(crate) minter: Minter,
    pub(crate) login: PasswordCheck,
}

impl TokenEndpoint {
    /// `POST .../protocol/openid-connect/token`. Returns the grant type with
    /// the outcome so callers can count issuance per grant.
    pub async fn token(
        &self,
        realm: &Realm,
        authorization: Option<&str>,
        params: &Params,
        meta: &ClientMeta,
    ) -> Result<(TokenResponse, &'static str), OAuthError> {
        let request = TokenRequest::parse(params)?;
        let client = self
            .client_auth
            .calling_client(realm, authorization, params)
            .await?;
        request.check_allowed(&client)?;
        let grant = request.grant_type();
        let response = match request {
            TokenRequest::Password(r) => self.password_grant(realm, &client, r, meta).await?,
            TokenRequest::ClientCredentials { scope } => {
                self.client_credentials_grant(realm, &client, scope.as_deref())
                    .await?
            }
            TokenRequest::RefreshToken(r) => self.refresh_grant(realm, &client, r, meta).await?,
            TokenRequest::AuthorizationCode(r) => {
                self.authorization_code_grant(realm, &client, r, meta)
                    .await?
            }
            TokenRequest::DeviceCode { device_code } => {
                self.device_code_grant(realm, &client, device_code, meta)
                    .await?
            }
        };
        Ok((response, grant))
    }
}
