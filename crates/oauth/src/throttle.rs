//! Failed-login throttling per (realm, username). Counting by username, not
//! by whether the user exists, so the lock reveals nothing; one user's
//! failures never lock out another. State is per node (documented).

use crate::config::ThrottleConfig;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

pub struct LoginThrottle {
    cfg: ThrottleConfig,
    state: Mutex<HashMap<(String, String), Entry>>,
}

const MAX_TRACKED: usize = 100_000;

impl LoginThrottle {
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` while the username is locked.
    pub fn check(&self, realm_id: &str, username: &str) -> Result<(), u64> {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.get(&(realm_id.to_string(), username.to_string())) {
            Some(Entry {
                locked_until: Some(until),
                ..
            }) if *until > now => Err((*until - now).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, realm_id: &str, username: &str) {
        let now = Instant::now();
        let window = Duration::from_secs(self.cfg.window_secs);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() >= MAX_TRACKED {
            state.retain(|_, e| {
                now.duration_since(e.window_start) < window
                    || e.locked_until.is_some_and(|u| u > now)
            });
        }
        let e = state
            .entry((realm_id.to_string(), username.to_string()))
            .or_insert(Entry {
                failures: 0,
                window_start: now,
                locked_until: None,
            });
        if now.duration_since(e.window_start) >= window {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures += 1;
        if e.failures >= self.cfg.max_failures {
            e.locked_until = Some(now + Duration::from_secs(self.cfg.lockout_secs));
            e.failures = 0;
            e.window_start = now;
        }
    }

    pub fn record_success(&self, realm_id: &str, username: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.remove(&(realm_id.to_string(), username.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_only_that_user() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 3,
            window_secs: 60,
            lockout_secs: 30,
        });
        for _ in 0..2 {
            t.record_failure("r", "alice");
            assert!(t.check("r", "alice").is_ok());
        }
        t.record_failure("r", "alice");
        let wait = t.check("r", "alice").expect_err("locked");
        assert!((1..=30).contains(&wait));
        assert!(t.check("r", "bob").is_ok(), "other users unaffected");
        assert!(t.check("other-realm", "alice").is_ok());
        t.record_success("r", "alice");
        assert!(t.check("r", "alice").is_ok());
    }
}
