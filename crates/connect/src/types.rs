//! What the flows take and answer: who starts a round trip, where the
//! callback sends the browser, what `check-signup` says, and the shapes
//! listed to users and Che.

use serde::Serialize;
use tessera_core::Realm;
use tessera_oauth::TokenResponse;
use url::Url;

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedUp {
    pub user: Me,
    pub provider: String,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

/// The user as a client shows it (CodeStream's "me" object).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
