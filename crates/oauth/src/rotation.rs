//! Refresh-token rotation that a lost response cannot turn into a logout.
//!
//! Every use of a refresh token spends it and stores its successor in one
//! commit. The answer carrying the successor can still be lost after that
//! commit (the process dies, the network drops), and the client, holding
//! only the spent token, tries again. So a successor is not random: it is
//! HMAC(server key, predecessor), and the database still keeps hashes only.
//! A spent token presented again within the reuse grace window gets the very
//! same successor back, as long as nobody has used that successor yet: there
//! is never more than one live successor per token, and a retry or a racing
//! duplicate request gets what the lost answer held. After the window, or
//! once the successor is itself spent, the token is refused, and past the
//! window the caller ends the session (reuse detection, `Sessions`).

use crate::issue::NewRefreshToken;
use std::sync::Arc;
use tessera_core::{RefreshTokenRecord, Session, TokenHash};
use tessera_keys::MasterKey;
use tessera_store::{ClientMeta, RefreshTokenStore, RotateOutcome, StoreError};

/// What rotating a refresh token came to.
pub enum Rotated {
    /// `next` is the token's successor: made now (the token was live and is
    /// spent now), or made moments ago and still unused (a retry after a
    /// lost answer, or a request racing its twin): the same one either way.
    Successor {
        next: NewRefreshToken,
        session: Box<Session>,
    },
    /// Spent at `rotated_at`, and the successor is gone or used: the caller
    /// applies the reuse rule.
    Spent { session_id: String, rotated_at: i64 },
    /// No such token.
    Unknown,
    /// The token or its session expired or was revoked.
    Inactive,
}

#[derive(Clone)]
pub struct Rotation {
    pub(crate) refresh_db: Arc<dyn RefreshTokenStore>,
    /// Derived from the master key for this purpose only, so every node of a
    /// cluster (one master key) derives the same successor.
    pub(crate) key: Arc<MasterKey>,
    pub(crate) grace_ms: i64,
}

impl Rotation {
    pub(crate) fn new(
        refresh_db: Arc<dyn RefreshTokenStore>,
        master: &MasterKey,
        grace_ms: i64,
    ) -> Self {
        Self {
            refresh_db,
            key: Arc::new(master.derive_key("refresh-successor")),
            grace_ms,
        }
    }

    /// The one successor `predecessor` can ever have, living until
    /// `expires_at`.
    fn successor(
        &self,
        predecessor: &str,
        session_id: &str,
        now: i64,
        expires_at: i64,
    ) -> NewRefreshToken {
        let secret = self.key.derive_secret(predecessor);
        NewRefreshToken {
            record: RefreshTokenRecord {
                hash: TokenHash::of(&secret),
                session_id: session_id.to_string(),
                created_at: now,
                expires_at,
                rotated_at: None,
            },
            secret,
        }
    }

    /// Spends `old` (a token of `session`) for a successor living until
    /// `expires_at`, or hands back the successor it already has.
    pub async fn rotate(
        &self,
        old: &str,
        session: &Session,
        expires_at: i64,
        now: i64,
        meta: &ClientMeta,
    ) -> Result<Rotated, StoreError> {
        let next = self.successor(old, &session.id, now, expires_at);
        let outcome = self
            .refresh_db
            .rotate_refresh_token(&TokenHash::of(old), &next.record, now, meta)
            .await?;
        Ok(match outcome {
            RotateOutcome::Rotated(session) => Rotated::Successor { next, session },
            RotateOutcome::AlreadyRotated {
                session_id,
                rotated_at,
            } => self.again(old, session_id, rotated_at, now).await?,
            RotateOutcome::Unknown => Rotated::Unknown,
            RotateOutcome::Inactive => Rotated::Inactive,
        })
    }

    /// `old` was spent at `rotated_at`: its successor again if that was
    /// within the grace window and the successor is unused and its session
    /// live; else `Spent`.
    pub async fn again(
        &self,
        old: &str,
        session_id: String,
        rotated_at: i64,
        now: i64,
    ) -> Result<Rotated, StoreError> {
        if now - rotated_at <= self.grace_ms {
            let secret = self.key.derive_secret(old);
            let found = self
                .refresh_db
                .refresh_token_with_session(&TokenHash::of(&secret))
                .await?;
            if let Some((record, session)) = found {
                if record.rotated_at.is_none()
                    && record.expires_at > now
                    && session.id == session_id
                    && session.is_active(now)
                {
                    tracing::info!(session = %session_id,
                        "a spent refresh token came back within the grace window: its unused successor again");
                    return Ok(Rotated::Successor {
                        next: NewRefreshToken { secret, record },
                        session: Box::new(session),
                    });
                }
            }
        }
        Ok(Rotated::Spent {
            session_id,
            rotated_at,
        })
    }
}
