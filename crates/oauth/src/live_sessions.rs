//! The liveness path's cache of sessions. Every access token that carries a
//! session (userinfo, introspection, the account and Admin APIs, Che's
//! workspace API, socket admission) is checked against its session; most
//! of those sessions are alive, so a live verdict is kept in memory for a
//! short while instead of being asked of the database each time.
//!
//! Only live sessions are kept (found, not revoked, not expired), each until
//! `OAuthConfig::session_cache_ms` after it was read (default 1 s; 0
//! disables the cache) and never past the session's own `expires_at`. A
//! refresh may push `expires_at` later in the database: the copy here keeps
//! the earlier one, which errs on the side of refusing (and is read again).
//!
//! Coherence: every path that ends a session on this node goes through
//! `Sessions` (`end_session`, `end_user_sessions`, `end_client_sessions`,
//! `announce_ended`), which forgets the session here after the commit and
//! before it answers, so the node that revoked a session refuses it at once.
//! Another node forgets it when the revocation reaches it (`Sessions::
//! ended_elsewhere`; `tessera serve` relays them over PostgreSQL
//! LISTEN/NOTIFY), normally within milliseconds; if that notice is lost (or
//! the session was revoked by `tessera admin` on the database directly), at
//! the latest once its copy is `session_cache_ms` old. That is the stated
//! bound. A lookup that raced a revocation does not put what it read back (a
//! generation counter checked under the map's lock), so a live verdict read
//! before the commit cannot outlive the eviction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};
use tessera_core::Session;

struct Entry {
    session: Session,
    /// `min(read + ttl, expires_at)`.
    until: Instant,
}

/// Live sessions recently read from the database, forgotten on revocation.
pub struct LiveSessions {
    ttl: Duration,
    max: usize,
    /// Bumped by every eviction; a read keeps its result only if it did not
    /// move while the read ran.
    generation: AtomicU64,
    map: RwLock<HashMap<String, Entry>>,
}

/// Where a lookup started: hand it back to `keep`.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64, Instant);

impl LiveSessions {
    /// A cache keeping entries for `ttl` (zero: nothing is kept), at most
    /// `max` of them.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            generation: AtomicU64::new(0),
            map: RwLock::new(HashMap::new()),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max > 0
    }

    /// The cached session, if a copy younger than the bound is held.
    pub fn get(&self, session_id: &str) -> Option<Session> {
        if !self.enabled() {
            return None;
        }
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(session_id)
            .filter(|e| Instant::now() < e.until)
            .map(|e| e.session.clone())
    }

    /// Call before reading a session from the database.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst), Instant::now())
    }

    /// Keeps `session`, read from the database after `ticket`, if it is live
    /// at `now_ms` and no session was forgotten since the ticket was taken.
    pub fn keep(&self, ticket: Ticket, session: &Session, now_ms: i64) {
        if !self.enabled() || !session.is_active(now_ms) {
            return;
        }
        let left = Duration::from_millis((session.expires_at - now_ms).max(0) as u64);
        // Counted from before the read: what it saw can be no older.
        let until = ticket.1 + self.ttl.min(left);
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock `forget` takes after bumping the counter:
        // either this insert comes first (and is removed), or it sees the bump.
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        if map.len() >= self.max && !map.contains_key(&session.id) {
            let now = Instant::now();
            map.retain(|_, e| now < e.until);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(
            session.id.clone(),
            Entry {
                session: session.clone(),
                until,
            },
        );
    }

    /// Forgets these sessions (they were revoked); lookups under way do not
    /// keep what they read.
    pub fn forget<'a>(&self, session_ids: impl IntoIterator<Item = &'a str>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for id in session_ids {
            map.remove(id);
        }
    }

    /// Forgets every session (revocations may have been missed).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Entries held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::time::now_ms;

    fn session(id: &str, expires_in_ms: i64) -> Session {
        let now = now_ms();
        Session {
            id: id.into(),
            realm_id: "r".into(),
            user_id: "u".into(),
            client_id: "c".into(),
            device_id: None,
            ip: None,
            user_agent: None,
            context_name: None,
            origin: None,
            sso_session_id: None,
            scope: String::new(),
            auth_time: now,
            created_at: now,
            last_used_at: now,
            expires_at: now + expires_in_ms,
            revoked_at: None,
        }
    }

    fn keep(cache: &LiveSessions, s: &Session) {
        cache.keep(cache.ticket(), s, now_ms());
    }

    #[test]
    fn only_live_sessions_are_kept_until_forgotten() {
        let cache = LiveSessions::new(Duration::from_secs(60), 100);
        keep(&cache, &session("a", 60_000));
        assert!(cache.get("a").is_some());
        let mut ended = session("b", 60_000);
        ended.revoked_at = Some(now_ms());
        keep(&cache, &ended);
        keep(&cache, &session("c", -1));
        assert!(cache.get("b").is_none(), "a revoked session is not kept");
        assert!(cache.get("c").is_none(), "an expired session is not kept");
        cache.forget(["a"]);
        assert!(cache.get("a").is_none());
        keep(&cache, &session("a", 60_000));
        cache.forget_all();
        assert!(cache.is_empty());
    }

    #[test]
    fn an_entry_lasts_the_ttl_and_never_past_the_session() {
        let cache = LiveSessions::new(Duration::from_millis(50), 100);
        keep(&cache, &session("a", 60_000));
        assert!(cache.get("a").is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(cache.get("a").is_none(), "older than the TTL: asked again");

        let cache = LiveSessions::new(Duration::from_secs(60), 100);
        keep(&cache, &session("b", 50));
        assert!(cache.get("b").is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(cache.get("b").is_none(), "not past the session's expiry");

        let off = LiveSessions::new(Duration::ZERO, 100);
        keep(&off, &session("a", 60_000));
        assert!(off.get("a").is_none() && off.is_empty(), "0 disables it");
    }

    #[test]
    fn a_lookup_that_raced_a_revocation_is_not_kept() {
        let cache = LiveSessions::new(Duration::from_secs(60), 100);
        // A lookup starts and reads the session live ...
        let ticket = cache.ticket();
        let read = session("a", 60_000);
        // ... the session is revoked and forgotten meanwhile ...
        cache.forget(["a"]);
        // ... and what the lookup read is not kept.
        cache.keep(ticket, &read, now_ms());
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let cache = LiveSessions::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            keep(&cache, &session(&format!("s{i}"), 60_000));
            assert!(cache.len() <= 3);
        }
        assert!(cache.get("s9").is_some(), "the newest is kept");
    }
}
