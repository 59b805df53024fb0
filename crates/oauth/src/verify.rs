//! Verifying this server's own access tokens (userinfo, introspection,
//! revocation, the Admin API): signature with the realm's cached keys,
//! issuer, expiry and token kind, then that the session is still alive.

use crate::keyring::KeyCache;
use crate::live_sessions::LiveSessions;
use crate::OAuthConfig;
use std::sync::Arc;
use tessera_core::claims::{AccessClaims, TYP_ACCESS};
use tessera_core::time::{now_ms, now_secs};
use tessera_core::{OAuthError, Realm, Session};
use tessera_store::{ClientStore, SessionStore, UserStore};

use tessera_keys::{decode_unverified_header, verify_compact};

/// Seconds of clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_SECS: i64 = 5;

/// Why an access token was not accepted. Callers map it to their own
/// answer (401 `invalid_token`, a socket's `unauthorized` reason, 503); none
/// reads the description to tell the cases apart.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not a JWT, a bad signature, another issuer, issued in the future.
    #[error("Token verification failed")]
    Invalid,
    /// Signed by no key of the realm (unknown or retired `kid`).
    #[error("Token verification failed")]
    UnknownKey,
    /// A JWT of another kind (ID, consent, machine, refresh...).
    #[error("Token verification failed")]
    WrongKind,
    #[error("Token is expired")]
    Expired,
    /// Its session ended (logout, revocation, expiry).
    #[error("Session not active")]
    Revoked,
    /// Its client is disabled or gone.
    #[error("Client not found or disabled")]
    ClientDisabled,
    /// The store could not be asked: not the token's fault. Answered 503
    /// `temporarily_unavailable` with `Retry-After`.
    #[error("temporarily unavailable")]
    Unavailable(String),
    /// Anything else that went wrong on our side (a row that does not
    /// decode, a key that does not unseal): a 500, not a retryable 503.
    #[error("internal error")]
    Internal(String),
}

impl From<Rejection> for OAuthError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Unavailable(detail) => OAuthError::unavailable(detail),
            Rejection::Internal(detail) => OAuthError::server_error(detail),
            other => OAuthError::invalid_token(other.to_string()).with_debug(format!("{other:?}")),
        }
    }
}

/// A key-cache failure: the store being down is `Unavailable`, anything
/// else `Internal`.
fn unavailable(e: OAuthError) -> Rejection {
    let detail = e.debug.unwrap_or(e.description);
    if e.code == tessera_core::OAuthErrorCode::TemporarilyUnavailable {
        Rejection::Unavailable(detail)
    } else {
        Rejection::Internal(detail)
    }
}

/// A store failure: `Unavailable` when the database cannot be reached,
/// else `Internal`.
fn store_failure(e: tessera_store::StoreError) -> Rejection {
    match e {
        tessera_store::StoreError::Unavailable(detail) => Rejection::Unavailable(detail),
        other => Rejection::Internal(other.to_string()),
    }
}

/// Checks this server's access tokens: signature, issuer, kind, expiry,
/// and that their session and client are still live.
#[derive(Clone)]
pub struct Verifier {
    pub(crate) config: Arc<OAuthConfig>,
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) session_db: Arc<dyn SessionStore>,
    pub(crate) client_db: Arc<dyn ClientStore>,
    pub(crate) user_db: Arc<dyn UserStore>,
    /// Live sessions recently read (`live_sessions.rs`).
    pub(crate) live: Arc<LiveSessions>,
    /// Tokens whose signature was checked (`verified_tokens.rs`).
    pub(crate) verified: Arc<crate::verified_tokens::VerifiedTokens>,
}

impl Verifier {
    /// The realm's access-token key `kid` (reloading the cache if it is new).
    pub async fn key(
        &self,
        realm: &Realm,
        kid: &str,
    ) -> Result<Option<tessera_keys::VerifyingKey>, OAuthError> {
        self.keys.verifier(realm, kid).await
    }

    /// The user a verified token is about (enabled or not; `None` if gone).
    pub async fn subject(
        &self,
        realm: &Realm,
        user_id: &str,
    ) -> Result<Option<tessera_core::User>, OAuthError> {
        self.user_db
            .user(&realm.id, user_id)
            .await
            .map_err(OAuthError::server_error)
    }

    /// The realm's signing keys: its JWKS and public key, as published.
    pub async fn realm_keys(
        &self,
        realm: &Realm,
    ) -> Result<Arc<crate::keyring::RealmKeys>, OAuthError> {
        self.keys.realm_keys(realm).await
    }

    /// Checks signature, `iss`, `typ`, `exp` and `iat`. Does not look at the session.
    pub async fn verify_access_token(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<AccessClaims, OAuthError> {
        Ok(self.check_access_token(realm, token).await?)
    }

    /// `verify_access_token` with the reason for a refusal as a type.
    pub async fn check_access_token(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<AccessClaims, Rejection> {
        let header = decode_unverified_header(token).map_err(|_| Rejection::Invalid)?;
        let kid = header.kid.ok_or(Rejection::Invalid)?;
        if header.kind.is_some() {
            return Err(Rejection::WrongKind);
        }
        let key = self
            .keys
            .verifier(realm, &kid)
            .await
            .map_err(unavailable)?
            .ok_or(Rejection::UnknownKey)?;
        let now = now_secs();
        let claims = match self.verified.get(&realm.id, &kid, token) {
            // Verified before with this key, which the realm still holds.
            Some(claims) => claims,
            None => {
                let value = verify_compact(token, &key).map_err(|_| Rejection::Invalid)?;
                let claims: AccessClaims =
                    serde_json::from_value(value).map_err(|_| Rejection::WrongKind)?;
                self.verified.keep(&realm.id, &kid, token, &claims, now);
                claims
            }
        };
        if claims.typ != TYP_ACCESS {
            return Err(Rejection::WrongKind);
        }
        if claims.iss != self.config.issuer(&realm.name) {
            return Err(Rejection::Invalid);
        }
        if claims.exp + LEEWAY_SECS <= now {
            return Err(Rejection::Expired);
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(Rejection::Invalid);
        }
        Ok(claims)
    }

    /// Verifies the token and, when it belongs to a session, that the session
    /// is still active (so logout and revocation take effect at once).
    pub async fn verify_live_access_token(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<(AccessClaims, Option<Session>), OAuthError> {
        Ok(self.check_live_access_token(realm, token).await?)
    }

    /// `verify_live_access_token` with the reason for a refusal as a type.
    pub async fn check_live_access_token(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<(AccessClaims, Option<Session>), Rejection> {
        let claims = self.check_access_token(realm, token).await?;
        let session = match &claims.sid {
            Some(sid) => Some(self.session_verdict(realm, sid).await?),
            None => {
                // No session to end (client_credentials): the client itself
                // must still exist and be enabled.
                self.client_db
                    .client_by_client_id(&realm.id, &claims.azp)
                    .await
                    .map_err(store_failure)?
                    .filter(|c| c.enabled)
                    .ok_or(Rejection::ClientDisabled)?;
                None
            }
        };
        Ok((claims, session))
    }

    /// The session if it is active, in `realm`, and its client is still
    /// enabled (a disabled client's tokens die everywhere at once, even
    /// before its sessions are revoked).
    pub async fn live_session(
        &self,
        realm: &Realm,
        session_id: &str,
    ) -> Result<Option<Session>, OAuthError> {
        match self.session_verdict(realm, session_id).await {
            Ok(s) => Ok(Some(s)),
            Err(Rejection::Unavailable(detail)) => Err(OAuthError::unavailable(detail)),
            Err(Rejection::Internal(detail)) => Err(OAuthError::server_error(detail)),
            Err(_) => Ok(None),
        }
    }

    /// `live_session` asked of the database, never of the cache: for
    /// answers that show the session's current fields (a refresh rotation
    /// moves `expires_at`).
    pub async fn current_session(
        &self,
        realm: &Realm,
        session_id: &str,
    ) -> Result<Option<Session>, OAuthError> {
        match self.check_session(realm, session_id, false).await {
            Ok(s) => Ok(Some(s)),
            Err(Rejection::Unavailable(detail)) => Err(OAuthError::unavailable(detail)),
            Err(Rejection::Internal(detail)) => Err(OAuthError::server_error(detail)),
            Err(_) => Ok(None),
        }
    }

    async fn session_verdict(&self, realm: &Realm, session_id: &str) -> Result<Session, Rejection> {
        self.check_session(realm, session_id, true).await
    }

    /// The session, from this node's cache of live sessions when `cached`
    /// and a copy younger than `session_cache_ms` is held, else from the
    /// database (kept if live and no revocation ran meanwhile). The client
    /// is checked every time (it comes from the catalog).
    async fn check_session(
        &self,
        realm: &Realm,
        session_id: &str,
        cached: bool,
    ) -> Result<Session, Rejection> {
        let hit = if cached {
            self.live.get(session_id)
        } else {
            None
        };
        let s = match hit {
            Some(s) => s,
            None => {
                let ticket = self.live.ticket();
                let found = self
                    .session_db
                    .session(session_id)
                    .await
                    .map_err(store_failure)?;
                if let Some(s) = &found {
                    self.live.keep(ticket, s, now_ms());
                }
                found.ok_or(Rejection::Revoked)?
            }
        };
        if !(s.is_active(now_ms()) && s.realm_id == realm.id) {
            return Err(Rejection::Revoked);
        }
        self.client_db
            .client(&realm.id, &s.client_id)
            .await
            .map_err(store_failure)?
            .filter(|c| c.enabled)
            .ok_or(Rejection::ClientDisabled)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Params;

    /// A service on SQLite with `admin` of `master` signed in (password
    /// grant); returns the service, the realm, the access token and the
    /// database file.
    async fn signed_in() -> (crate::Services, Realm, String, tempfile::TempDir) {
        let (svc, dir) = crate::provision::tests::service().await;
        svc.admin
            .bootstrap(Some("pw-0123456789".into()), "apps")
            .await
            .expect("bootstrap");
        let realm = svc.realms.realm("master").await.expect("realm");
        let params = Params::parse(
            b"grant_type=password&client_id=admin-cli&username=admin&password=pw-0123456789",
        )
        .expect("form");
        let (res, _) = svc
            .tokens
            .token(&realm, None, &params, &Default::default())
            .await
            .expect("token");
        (svc, realm, res.access_token, dir)
    }

    /// `token` with its last character changed.
    fn forge(token: &str) -> String {
        let mut forged = token.to_string();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        forged
    }

    #[tokio::test]
    async fn a_verified_token_is_not_verified_again_but_everything_else_is() {
        let (svc, realm, token, _dir) = signed_in().await;
        let before = svc.verifier.verified.hits();
        let first = svc.verifier.check_access_token(&realm, &token).await;
        let again = svc.verifier.check_access_token(&realm, &token).await;
        assert_eq!(first.as_ref().ok(), again.as_ref().ok());
        assert!(first.is_ok());
        assert_eq!(
            svc.verifier.verified.hits(),
            before + 1,
            "one signature check saved"
        );
        // One byte off: another hash, verified in full, refused.
        let forged = forge(&token);
        assert_eq!(
            svc.verifier.check_access_token(&realm, &forged).await.err(),
            Some(Rejection::Invalid)
        );
        // Another realm does not hold the key: refused before the cache.
        let other = svc.realms.realm("apps").await.expect("apps");
        assert_eq!(
            svc.verifier.check_access_token(&other, &token).await.err(),
            Some(Rejection::UnknownKey)
        );
        // The session still decides liveness.
        let sid = sid(&token);
        svc.sessions.end_session(&sid).await.expect("end");
        assert_eq!(
            svc.verifier
                .check_live_access_token(&realm, &token)
                .await
                .err(),
            Some(Rejection::Revoked)
        );
    }

    #[tokio::test]
    async fn refusals_are_typed() {
        let (svc, realm, token, dir) = signed_in().await;
        assert!(svc
            .verifier
            .check_live_access_token(&realm, &token)
            .await
            .is_ok());
        assert_eq!(
            svc.verifier
                .check_live_access_token(&realm, "not-a-jwt")
                .await
                .err(),
            Some(Rejection::Invalid)
        );
        let forged = forge(&token);
        assert_eq!(
            svc.verifier
                .check_live_access_token(&realm, &forged)
                .await
                .err(),
            Some(Rejection::Invalid)
        );
        let other = svc.realms.realm("apps").await.expect("apps");
        assert_eq!(
            svc.verifier
                .check_live_access_token(&other, &token)
                .await
                .err(),
            Some(Rejection::UnknownKey),
            "another realm's keys do not know it"
        );
        // The sessions table goes away: a fault of ours, never "invalid"
        // (once the live verdict this node holds is forgotten), and not a
        // retryable outage either (that is `StoreError::Unavailable`,
        // classified in `map_db_error`).
        svc.sessions.forget_live_sessions();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let mut raw = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .expect("raw connection");
        sqlx::query("ALTER TABLE sessions RENAME TO sessions_gone")
            .execute(&mut raw)
            .await
            .expect("rename");
        assert!(matches!(
            svc.verifier.check_live_access_token(&realm, &token).await,
            Err(Rejection::Internal(_))
        ));
        sqlx::query("ALTER TABLE sessions_gone RENAME TO sessions")
            .execute(&mut raw)
            .await
            .expect("rename back");
        let sid = sid(&token);
        svc.sessions.end_session(&sid).await.expect("end");
        assert_eq!(
            svc.verifier
                .check_live_access_token(&realm, &token)
                .await
                .err(),
            Some(Rejection::Revoked)
        );
        assert_eq!(
            OAuthError::from(Rejection::Revoked).code,
            tessera_core::OAuthErrorCode::InvalidToken
        );
        assert_eq!(
            OAuthError::from(Rejection::Unavailable("down".into())).code,
            tessera_core::OAuthErrorCode::TemporarilyUnavailable
        );
        assert_eq!(
            OAuthError::from(Rejection::Internal("bad row".into())).code,
            tessera_core::OAuthErrorCode::ServerError
        );
        assert!(matches!(
            store_failure(tessera_store::StoreError::Unavailable(
                "pool timed out".into()
            )),
            Rejection::Unavailable(_)
        ));
        assert!(matches!(
            store_failure(tessera_store::StoreError::Unexpected("bad row".into())),
            Rejection::Internal(_)
        ));
    }

    /// The service's session table, counting reads; one read can be held
    /// after it has looked (to let a revocation overtake it).
    struct Watched {
        inner: Arc<dyn SessionStore>,
        reads: std::sync::atomic::AtomicU64,
        /// (reached, release)
        hold: std::sync::Mutex<Option<Arc<(tokio::sync::Notify, tokio::sync::Notify)>>>,
    }

    #[async_trait::async_trait]
    impl SessionStore for Watched {
        async fn create_session(
            &self,
            session: &Session,
            first: &tessera_core::RefreshTokenRecord,
        ) -> tessera_store::Result<()> {
            self.inner.create_session(session, first).await
        }
        async fn session(&self, id: &str) -> tessera_store::Result<Option<Session>> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let found = self.inner.session(id).await;
            let hold = self.hold.lock().expect("lock").take();
            if let Some(h) = hold {
                h.0.notify_one();
                h.1.notified().await;
            }
            found
        }
        async fn user_sessions(
            &self,
            realm_id: &str,
            user_id: &str,
            now_ms: i64,
        ) -> tessera_store::Result<Vec<Session>> {
            self.inner.user_sessions(realm_id, user_id, now_ms).await
        }
        async fn revoke_session(
            &self,
            id: &str,
            now_ms: i64,
        ) -> tessera_store::Result<Option<tessera_store::SessionOwner>> {
            self.inner.revoke_session(id, now_ms).await
        }
        async fn revoke_user_sessions(
            &self,
            realm_id: &str,
            user_id: &str,
            now_ms: i64,
        ) -> tessera_store::Result<Vec<String>> {
            self.inner
                .revoke_user_sessions(realm_id, user_id, now_ms)
                .await
        }
        async fn revoke_client_sessions(
            &self,
            realm_id: &str,
            client_id: &str,
            now_ms: i64,
        ) -> tessera_store::Result<Vec<(String, String)>> {
            self.inner
                .revoke_client_sessions(realm_id, client_id, now_ms)
                .await
        }
        async fn touch_session(
            &self,
            id: &str,
            now_ms: i64,
            client_meta: &tessera_store::ClientMeta,
        ) -> tessera_store::Result<Option<Session>> {
            self.inner.touch_session(id, now_ms, client_meta).await
        }
    }

    /// A verifier and `Sessions` sharing a cache of live sessions kept for
    /// `ttl_ms`, over the service's database seen through `Watched`.
    fn cached(svc: &crate::Services, ttl_ms: u64) -> (Verifier, crate::Sessions, Arc<Watched>) {
        let live = Arc::new(LiveSessions::new(
            std::time::Duration::from_millis(ttl_ms),
            1000,
        ));
        let table = Arc::new(Watched {
            inner: svc.verifier.session_db.clone(),
            reads: Default::default(),
            hold: Default::default(),
        });
        let verifier = Verifier {
            session_db: table.clone(),
            live: live.clone(),
            ..svc.verifier.clone()
        };
        let sessions = crate::Sessions {
            session_db: table.clone(),
            live,
            ..svc.sessions.clone()
        };
        (verifier, sessions, table)
    }

    fn reads(t: &Watched) -> u64 {
        t.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_session_ended_on_this_node_is_refused_at_once() {
        let (svc, realm, token, _dir) = signed_in().await;
        let (verifier, sessions, table) = cached(&svc, 60_000);
        for _ in 0..3 {
            verifier
                .check_live_access_token(&realm, &token)
                .await
                .expect("live");
        }
        assert_eq!(reads(&table), 1, "a live session is read once, then kept");
        sessions.end_session(&sid(&token)).await.expect("end");
        assert_eq!(
            verifier.check_live_access_token(&realm, &token).await.err(),
            Some(Rejection::Revoked),
            "the node that ended it refuses it at once"
        );
        assert_eq!(
            verifier.check_live_access_token(&realm, &token).await.err(),
            Some(Rejection::Revoked),
            "and a refusal is never kept as live"
        );
        assert_eq!(reads(&table), 3, "a refused session is asked again");

        // Every user session at once (an administrator, sign out everywhere).
        let (svc, realm, token, _dir) = signed_in().await;
        let (verifier, sessions, _) = cached(&svc, 60_000);
        let session = verifier
            .live_session(&realm, &sid(&token))
            .await
            .expect("db");
        let user = session.expect("live").user_id;
        sessions
            .end_user_sessions(&realm, &user)
            .await
            .expect("end");
        assert_eq!(
            verifier
                .live_session(&realm, &sid(&token))
                .await
                .expect("db"),
            None
        );
    }

    #[tokio::test]
    async fn a_session_ended_elsewhere_is_refused_within_the_bound() {
        let (svc, realm, token, _dir) = signed_in().await;
        let (verifier, sessions, table) = cached(&svc, 300);
        let id = sid(&token);
        verifier
            .live_session(&realm, &id)
            .await
            .expect("db")
            .expect("live");
        // Another node revokes it: the database knows, this node does not.
        table
            .inner
            .revoke_session(&id, now_ms())
            .await
            .expect("revoke")
            .expect("was live");
        assert!(
            verifier
                .live_session(&realm, &id)
                .await
                .expect("db")
                .is_some(),
            "within the bound this node may still accept it"
        );
        // Its notice arrives: refused at once.
        sessions.ended_elsewhere(&id);
        assert_eq!(verifier.live_session(&realm, &id).await.expect("db"), None);

        // The notice is lost: refused once the copy is older than the bound.
        let (svc, realm, token, _dir) = signed_in().await;
        let (verifier, _, table) = cached(&svc, 300);
        let id = sid(&token);
        verifier
            .live_session(&realm, &id)
            .await
            .expect("db")
            .expect("live");
        table
            .inner
            .revoke_session(&id, now_ms())
            .await
            .expect("revoke");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_eq!(verifier.live_session(&realm, &id).await.expect("db"), None);
    }

    #[tokio::test]
    async fn a_lookup_that_raced_a_revocation_does_not_revive_the_session() {
        let (svc, realm, token, _dir) = signed_in().await;
        let (verifier, sessions, table) = cached(&svc, 60_000);
        let id = sid(&token);
        let gate = Arc::new((tokio::sync::Notify::new(), tokio::sync::Notify::new()));
        *table.hold.lock().expect("lock") = Some(gate.clone());
        // A lookup reads the session (live) ...
        let reader = {
            let (verifier, realm, id) = (verifier.clone(), realm.clone(), id.clone());
            tokio::spawn(async move { verifier.live_session(&realm, &id).await })
        };
        gate.0.notified().await;
        // ... the session is ended meanwhile ...
        assert!(sessions.end_session(&id).await.expect("end"));
        gate.1.notify_one();
        let old = reader.await.expect("join").expect("db");
        assert!(old.is_some(), "the racing lookup saw the session live");
        // ... and what it read is not what the next request gets.
        assert_eq!(verifier.live_session(&realm, &id).await.expect("db"), None);
    }

    fn sid(token: &str) -> String {
        use base64::Engine;
        let payload = token.split('.').nth(1).expect("payload");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        v["sid"].as_str().expect("sid").to_string()
    }
}
