//! Why a connect request failed: one enum whose `status` and `code` the
//! HTTP layer turns into a page or a JSON error; the `Display` text is safe
//! to show to the user.

use tessera_oauth::data::StoreError;

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
    /// Tessera's own database cannot be reached right now: 503.
    #[error("The service is temporarily unavailable. Try again shortly.")]
    StoreUnavailable(String),
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
            Self::StoreUnavailable(_) => 503,
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
            Self::StoreUnavailable(_) => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Internal(e.to_string())
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => Self::StoreUnavailable(detail),
            e => internal(e),
        }
    }
}
