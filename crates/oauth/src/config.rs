//! Token-service settings and their defaults, in one place.

use tessera_core::model::defaults;

#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// Base URL the server is reached at, without a trailing slash.
    pub public_url: String,
    /// See `defaults::REFRESH_REUSE_GRACE_MS`.
    pub refresh_reuse_grace_ms: i64,
    pub password: PasswordConfig,
    pub throttle: ThrottleConfig,
}

impl OAuthConfig {
    pub fn new(public_url: &str) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_string(),
            refresh_reuse_grace_ms: defaults::REFRESH_REUSE_GRACE_MS,
            password: PasswordConfig::default(),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// Argon2id cost. Defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Clone, Debug)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes running at once; the rest queue. Bounds CPU and memory use.
    pub max_concurrent: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// Failed-login throttling per (realm, username).
#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    /// Failures allowed within `window_secs` before the username is locked.
    pub max_failures: u32,
    pub window_secs: u64,
    pub lockout_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_secs: 60,
            lockout_secs: 60,
        }
    }
}
