//! Failed-login throttling per (realm, username). Attempts count from the
//! moment they start, not when their (slow) password check ends, so firing
//! many guesses in parallel buys no more than firing them one by one.
//! Counting by username, not by whether the user exists, reveals nothing; one
//! user's failures never lock out another. State is per node (documented).

use crate::config::ThrottleConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Entry {
    failures: u32,
    in_flight: u32,
    window_start: Option<Instant>,
    locked_until: Option<Instant>,
}

type Key = (String, String);

pub struct LoginThrottle {
    cfg: ThrottleConfig,
    state: Mutex<HashMap<Key, Entry>>,
}

/// Entries tracked at most; beyond that, idle entries are dropped first.
const MAX_TRACKED: usize = 100_000;
/// Usernames longer than this are throttled under their prefix.
const MAX_KEY_LEN: usize = 256;

/// One login attempt in progress. Dropping it without `succeeded` or
/// `failed` (e.g. the request was cancelled) counts as a failure.
pub struct Attempt {
    throttle: Arc<LoginThrottle>,
    key: Key,
    done: bool,
}

impl Attempt {
    pub fn succeeded(mut self) {
        self.done = true;
        self.throttle.finish(&self.key, true);
    }

    pub fn failed(mut self) {
        self.done = true;
        self.throttle.finish(&self.key, false);
    }

    /// The check never ran (server busy, database error): counts neither way.
    pub fn not_counted(mut self) {
        self.done = true;
        self.throttle.release(&self.key);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.finish(&self.key, false);
        }
    }
}

impl LoginThrottle {
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn key(realm_id: &str, username: &str) -> Key {
        let mut name = username.to_string();
        if name.len() > MAX_KEY_LEN {
            let mut cut = MAX_KEY_LEN;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        (realm_id.to_string(), name)
    }

    /// Starts an attempt, or `Err(seconds to wait)` while the username is
    /// locked or already has as many attempts (failed or running) as allowed.
    pub fn begin(self: &Arc<Self>, realm_id: &str, username: &str) -> Result<Attempt, u64> {
        let now = Instant::now();
        let window = Duration::from_secs(self.cfg.window_secs);
        let key = Self::key(realm_id, username);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() >= MAX_TRACKED && !state.contains_key(&key) {
            Self::evict(&mut state, now, window);
        }
        let e = state.entry(key.clone()).or_default();
        if let Some(until) = e.locked_until {
            if until > now {
                return Err((until - now).as_secs().max(1));
            }
            e.locked_until = None;
        }
        if e.window_start
            .is_some_and(|s| now.duration_since(s) >= window)
        {
            e.failures = 0;
            e.window_start = None;
        }
        if e.failures + e.in_flight >= self.cfg.max_failures {
            let wait = e
                .window_start
                .map(|s| window.saturating_sub(now.duration_since(s)).as_secs())
                .unwrap_or(1);
            return Err(wait.max(1));
        }
        e.in_flight += 1;
        Ok(Attempt {
            throttle: self.clone(),
            key,
            done: false,
        })
    }

    fn finish(&self, key: &Key, success: bool) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = state.get_mut(key) else { return };
        e.in_flight = e.in_flight.saturating_sub(1);
        if success {
            e.failures = 0;
            e.window_start = None;
        } else {
            e.window_start.get_or_insert(now);
            e.failures += 1;
            if e.failures >= self.cfg.max_failures {
                e.locked_until = Some(now + Duration::from_secs(self.cfg.lockout_secs));
                e.failures = 0;
                e.window_start = None;
            }
        }
        if e.in_flight == 0 && e.failures == 0 && e.locked_until.is_none() {
            state.remove(key);
        }
    }

    fn release(&self, key: &Key) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = state.get_mut(key) {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
    }

    /// Makes room: drops idle entries, then (under a username-spraying
    /// flood) unlocked ones.
    fn evict(state: &mut HashMap<Key, Entry>, now: Instant, window: Duration) {
        state.retain(|_, e| {
            e.in_flight > 0
                || e.locked_until.is_some_and(|u| u > now)
                || e.window_start
                    .is_some_and(|s| now.duration_since(s) < window)
        });
        if state.len() >= MAX_TRACKED {
            state.retain(|_, e| e.in_flight > 0 || e.locked_until.is_some_and(|u| u > now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Arc<LoginThrottle> {
        Arc::new(LoginThrottle::new(ThrottleConfig {
            max_failures: 3,
            window_secs: 60,
            lockout_secs: 30,
        }))
    }

    #[test]
    fn locks_after_max_failures_only_that_user() {
        let t = throttle();
        for _ in 0..3 {
            t.begin("r", "alice").expect("allowed").failed();
        }
        let wait = t.begin("r", "alice").err().expect("locked");
        assert!((1..=30).contains(&wait));
        assert!(t.begin("r", "bob").is_ok(), "other users unaffected");
        assert!(t.begin("other-realm", "alice").is_ok());
    }

    #[test]
    fn parallel_attempts_count_before_they_finish() {
        let t = throttle();
        let running: Vec<_> = (0..3)
            .map(|_| t.begin("r", "alice").expect("allowed"))
            .collect();
        assert!(
            t.begin("r", "alice").is_err(),
            "a fourth concurrent guess is refused"
        );
        drop(running); // abandoned attempts count as failures
        assert!(
            t.begin("r", "alice").is_err(),
            "and they locked the username"
        );
    }

    #[test]
    fn success_clears_failures() {
        let t = throttle();
        t.begin("r", "alice").expect("allowed").failed();
        t.begin("r", "alice").expect("allowed").failed();
        t.begin("r", "alice").expect("allowed").succeeded();
        for _ in 0..2 {
            t.begin("r", "alice").expect("allowed").failed();
        }
        assert!(t.begin("r", "alice").is_ok());
    }
}
