//! The token endpoint as a pipeline of small named steps (node-oidc-provider
//! style): parse the grant into a typed request, authenticate the client,
//! check the client may use the grant, then run the grant. Each grant lives
//! in its own file and reads only the parameters it declares.

mod client_credentials;
mod password;
mod refresh_token;

use crate::client_auth::ClientCredentials;
use crate::issue::TokenResponse;
use crate::params::Params;
use crate::TokenService;
use tessera_core::{Client, OAuthError, OAuthErrorCode, Realm, Secret};
use tessera_store::ClientMeta;

pub use password::PasswordRequest;
pub use refresh_token::RefreshRequest;

/// A token request, parsed once before any grant logic runs.
#[derive(Debug)]
pub enum TokenRequest {
    Password(PasswordRequest),
    ClientCredentials { scope: Option<String> },
    RefreshToken(RefreshRequest),
}

impl TokenRequest {
    /// The grant type names this server implements.
    pub const GRANT_TYPES: &'static [&'static str] =
        &["password", "client_credentials", "refresh_token"];

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

impl TokenService {
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
        let creds = ClientCredentials::extract(authorization, params)?;
        let client = self.authenticate_client(realm, &creds).await?;
        request.check_allowed(&client)?;
        let grant = request.grant_type();
        let response = match request {
            TokenRequest::Password(r) => self.password_grant(realm, &client, r, meta).await?,
            TokenRequest::ClientCredentials { scope } => {
                self.client_credentials_grant(realm, &client, scope.as_deref())
                    .await?
            }
            TokenRequest::RefreshToken(r) => self.refresh_grant(realm, &client, r, meta).await?,
        };
        Ok((response, grant))
    }
}
