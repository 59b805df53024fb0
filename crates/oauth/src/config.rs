//! Token-service settings and their defaults, in one place.

use tessera_core::model::defaults;

#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// Base URL the server is reached at, without a trailing slash.
    pub public_url: String,
    /// See `defaults::REFRESH_REUSE_GRACE_MS`.
    pub refresh_reuse_grace_ms: i64,
    /// How long a node trusts its cached copy of a realm or client that
    /// another node (or `tessera admin`) may have changed (`catalog.rs`).
    pub catalog_ttl_ms: u64,
    /// How long a node trusts a live verdict on a session without asking
    /// the database (`live_sessions.rs`); 0 asks every time. Revocations
    /// made on a node apply there at once; this bounds how late another
    /// node that missed the notice may still accept the session.
    pub session_cache_ms: u64,
    /// Live sessions a node keeps in memory at most.
    pub session_cache_max: usize,
    pub password: PasswordConfig,
    pub throttle: ThrottleConfig,
    pub consent: ConsentConfig,
    pub browser: BrowserConfig,
}

impl OAuthConfig {
    pub fn new(public_url: &str) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_string(),
            refresh_reuse_grace_ms: defaults::REFRESH_REUSE_GRACE_MS,
            catalog_ttl_ms: 2_000,
            session_cache_ms: 1_000,
            session_cache_max: 10_000,
            password: PasswordConfig::default(),
            throttle: ThrottleConfig::default(),
            consent: ConsentConfig::default(),
            browser: BrowserConfig::default(),
        }
    }

    /// The `iss` of tokens from `realm`.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{}", self.public_url, realm)
    }

    /// The realm name an `iss` of this server names (the inverse of
    /// `issuer`); `None` for another issuer. Picks the realm whose keys
    /// must verify a token; the token check then compares `iss` in full.
    pub fn realm_in_issuer<'a>(&self, iss: &'a str) -> Option<&'a str> {
        iss.strip_prefix(self.public_url.as_str())?
            .strip_prefix("/realms/")
            .filter(|name| !name.is_empty())
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

/// Guessing limits (see `throttle.rs`), counted in the database so every
/// node shares them.
#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    /// Login attempts per (realm, username) within `window_secs`; a success
    /// starts the username afresh.
    pub max_failures: u32,
    pub window_secs: u64,
    /// Failed logins per source address (any username) within
    /// `address_window_secs`: what stops password spraying.
    pub address_max_failures: u32,
    pub address_window_secs: u64,
    /// Device authorization requests per source address, and per realm,
    /// within `device_window_secs`.
    pub device_requests_per_address: u32,
    pub device_requests_per_realm: u32,
    /// Wrong user codes on the verification page per source address, and per
    /// realm, within `device_window_secs`.
    pub user_code_failures_per_address: u32,
    pub user_code_failures_per_realm: u32,
    pub device_window_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_secs: 60,
            address_max_failures: 100,
            address_window_secs: 600,
            device_requests_per_address: 30,
            device_requests_per_realm: 600,
            user_code_failures_per_address: 10,
            user_code_failures_per_realm: 100,
            device_window_secs: 60,
        }
    }
}

/// Public-key consent login (Verida): lifetimes and the storage endpoint.
#[derive(Clone, Debug)]
pub struct ConsentConfig {
    /// How long an auth JWT (challenge) can be answered: 60 s.
    pub challenge_ttl_secs: i64,
    /// Access token lifetime: 5 minutes.
    pub access_token_ttl_secs: i64,
    /// Refresh token lifetime, renewed by `regenerateRefreshToken`: 30 days.
    pub refresh_token_ttl_secs: i64,
    /// The `host` returned to apps (the storage endpoint); the server's public
    /// URL when unset.
    pub host: Option<String>,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        Self {
            challenge_ttl_secs: 60,
            access_token_ttl_secs: defaults::ACCESS_TOKEN_LIFESPAN_SECS,
            refresh_token_ttl_secs: defaults::SESSION_MAX_LIFESPAN_SECS,
            host: None,
        }
    }
}

/// Browser sign-in: SSO sessions, codes and the login page.
#[derive(Clone, Debug)]
pub struct BrowserConfig {
    /// How long a browser stays signed in (Keycloak's "SSO Session Max"): 10 hours.
    pub sso_session_max_secs: i64,
    /// Authorization code lifetime: 60 s.
    pub code_ttl_secs: i64,
    /// Device code lifetime (RFC 8628 `expires_in`): 10 minutes.
    pub device_code_ttl_secs: i64,
    /// Minimum seconds between device-code polls (RFC 8628 `interval`).
    pub device_poll_interval_secs: i64,
    /// How long a login page can be submitted after it was shown: 30 minutes.
    pub login_page_ttl_secs: i64,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self {
            sso_session_max_secs: 10 * 3600,
            code_ttl_secs: 60,
            device_code_ttl_secs: 600,
            device_poll_interval_secs: 5,
            login_page_ttl_secs: 1800,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OAuthConfig;

    #[test]
    fn the_realm_in_an_issuer_is_the_inverse_of_issuer() {
        let config = OAuthConfig::new("https://id.example.test/");
        for realm in ["master", "che", "a/b"] {
            assert_eq!(config.realm_in_issuer(&config.issuer(realm)), Some(realm));
        }
        for other in [
            "https://id.example.test/realms/",
            "https://id.example.test/auth/realms/che",
            "https://evil.example.test/realms/che",
            "https://id.example.test.evil/realms/che",
            "",
        ] {
            assert_eq!(config.realm_in_issuer(other), None, "{other}");
        }
    }
}
