//! Checking a socket's token: the same rules as the HTTP APIs (signature with
//! the realm key, `typ: Bearer`, issuer, expiry, a live session), plus an
//! enabled user. Only a user's access token will do: refresh tokens are not
//! JWTs, consent and machine tokens have other kinds, and service-account
//! tokens belong to no session.
//!
//! Any enabled realm's tokens will do. The token's (unverified) `iss` names
//! the realm, and is used for nothing else: the token is then verified with
//! that realm's keys and must carry exactly that realm's issuer, so a token
//! signed by one realm that names another is refused. An unknown or
//! disabled realm is `invalid`.

use crate::Ctx;
use tessera_oauth::verify::Rejection;

/// Who an authenticated socket belongs to.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The realm's id (rooms are keyed by it) and name (shown to the socket).
    pub realm_id: String,
    pub realm: String,
    pub user_id: String,
    pub username: String,
    pub session_id: String,
}

/// Why a socket was refused; `as_str` is the metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    Missing,
    Invalid,
    Expired,
    Revoked,
    Disabled,
    NotAUser,
    TooMany,
    Timeout,
    Unavailable,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Disabled => "disabled",
            Self::NotAUser => "not_a_user",
            Self::TooMany => "too_many",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
        }
    }

    /// The `unauthorized` event's message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "no token",
            Self::Invalid => "invalid token",
            Self::Expired => "token expired",
            Self::Revoked => "session revoked",
            Self::Disabled => "account disabled",
            Self::NotAUser => "a user's access token is required",
            Self::TooMany => "too many connections",
            Self::Timeout => "authentication timeout",
            Self::Unavailable => "temporarily unavailable, try again",
        }
    }
}

pub async fn identify(ctx: &Ctx, token: &str) -> Result<Identity, Reject> {
    let token = token.trim();
    if token.is_empty() {
        return Err(Reject::Missing);
    }
    if token.len() > 16 * 1024 {
        return Err(Reject::Invalid);
    }
    let svc = &ctx.services;
    let iss = tessera_keys::decode_unverified_issuer(token).map_err(|_| Reject::Invalid)?;
    let realm = svc.realms.realm_by_issuer(&iss).await.map_err(|e| {
        if e.code == tessera_core::OAuthErrorCode::ServerError {
            Reject::Unavailable
        } else {
            Reject::Invalid
        }
    })?;
    let (claims, session) = svc
        .verifier
        .check_live_access_token(&realm, token)
        .await
        .map_err(|r| match r {
            Rejection::Expired => Reject::Expired,
            Rejection::Revoked | Rejection::ClientDisabled => Reject::Revoked,
            Rejection::Unavailable(_) | Rejection::Internal(_) => Reject::Unavailable,
            Rejection::Invalid | Rejection::UnknownKey | Rejection::WrongKind => Reject::Invalid,
        })?;
    let session = session.ok_or(Reject::NotAUser)?;
    let user = svc
        .verifier
        .subject(&realm, &claims.sub)
        .await
        .map_err(|_| Reject::Unavailable)?
        .ok_or(Reject::Revoked)?;
    if !user.enabled {
        return Err(Reject::Disabled);
    }
    Ok(Identity {
        realm_id: realm.id,
        realm: realm.name,
        user_id: user.id,
        username: user.username,
        session_id: session.id,
    })
}

/// Whether the session is still live (checked again after joining its room,
/// so a revocation that raced the join is not missed).
pub async fn still_live(ctx: &Ctx, session_id: &str) -> bool {
    matches!(ctx.services.sessions.is_active(session_id).await, Ok(true))
}
