//! The verified caller, as handlers see it.

use std::fmt;
use tessera_core::Secret;

/// What kind of token authenticated the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A user's access token (`typ: Bearer`), with its session id if any.
    User { session: Option<String> },
    /// A Che machine token, bound to one workspace.
    Machine { workspace_id: String },
    /// A consent-login access token (`typ: Consent`, Verida's `type:
    /// access`): `Subject::id` is the per-(DID, context) database username.
    Consent {
        session: String,
        did: String,
        context_name: String,
    },
}

/// The caller of a request, put in the request extensions by [`crate::VerifyLayer`].
#[derive(Clone)]
#[non_exhaustive]
pub struct Subject {
    /// `sub` of an access token; `uid` of a machine token.
    pub id: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub scope: Vec<String>,
    /// The client the token was issued to (`azp`), for user tokens.
    pub client_id: Option<String>,
    /// The token's `aud` (empty for machine tokens).
    pub audience: Vec<String>,
    pub kind: TokenKind,
    /// The token itself, for calls made on the caller's behalf.
    pub token: Secret<String>,
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Subject {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role) || self.scope.iter().any(|s| s == role)
    }

    pub fn is_machine(&self) -> bool {
        matches!(self.kind, TokenKind::Machine { .. })
    }

    pub fn is_consent(&self) -> bool {
        matches!(self.kind, TokenKind::Consent { .. })
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Subject {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Subject>()
            .cloned()
            .ok_or_else(|| crate::layer::unauthorized("authentication required"))
    }
}
