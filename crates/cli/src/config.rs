//! Configuration, layered: built-in defaults, then the TOML file, then
//! `TESSERA_*` environment variables, then command-line flags. All defaults
//! are in `Config::default`. Secrets (master key, bootstrap password) come
//! from the environment only and are never part of this struct.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_channel::ChannelConfig;
use tessera_connect::{ConnectConfig, ProviderConfig};
use tessera_http::HttpSettings;
use tessera_oauth::config::{BrowserConfig, ConsentConfig, PasswordConfig, ThrottleConfig};
use tessera_oauth::gc::GcConfig;
use tessera_oauth::OAuthConfig;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: String,
    pub public_url: Option<String>,
    pub database_url: Option<String>,
    /// Realm used by realm-less endpoints (Che settings, ...). Created on start if missing.
    pub default_realm: String,
    /// `text` or `json`.
    pub log_format: String,
    /// Default log filter (overridden by `RUST_LOG`).
    pub log_level: String,
    pub refresh_reuse_grace_ms: i64,
    /// How long a node trusts its cached realms and clients when another
    /// node may have changed them (its own changes apply at once).
    pub catalog_ttl_ms: u64,
    /// How long a node trusts a live verdict on a session without asking
    /// the database (0: never). Revocations on a node apply there at once;
    /// other nodes hear of them within milliseconds (PostgreSQL), and this
    /// bounds how late one that missed the notice still accepts the session.
    pub session_cache_ms: u64,
    /// Live sessions a node keeps in memory at most.
    pub session_cache_max: usize,
    pub max_body_bytes: usize,
    pub che_client_id: String,
    pub password_memory_kib: u32,
    pub password_iterations: u32,
    pub password_parallelism: u32,
    pub password_max_concurrent: usize,
    pub login_max_failures: u32,
    pub login_window_secs: u64,
    /// Failed logins per source address (any username) per window: spraying.
    pub login_address_max_failures: u32,
    pub login_address_window_secs: u64,
    /// Device authorization requests per source address, and per realm, per window.
    pub device_requests_per_address: u32,
    pub device_requests_per_realm: u32,
    /// Wrong user codes on the verification page per source address, and per realm.
    pub user_code_failures_per_address: u32,
    pub user_code_failures_per_realm: u32,
    pub device_rate_window_secs: u64,
    /// How often expired sessions, refresh tokens and consent challenges
    /// are garbage-collected.
    pub gc_interval_secs: u64,
    /// Rows deleted per table per GC batch (short write locks).
    pub gc_batch_size: i64,
    /// Consent login (Verida): access token lifetime.
    pub consent_access_token_secs: i64,
    /// Consent login: refresh token lifetime (renewed by regenerateRefreshToken).
    pub consent_refresh_token_secs: i64,
    /// Consent login: how long an auth JWT (challenge) can be answered.
    pub consent_challenge_secs: i64,
    /// Consent login: the storage endpoint returned as `host` (default: public_url).
    pub consent_host: Option<String>,
    /// Browser sign-in: how long a browser stays signed in (SSO session).
    pub sso_session_secs: i64,
    /// Browser sign-in: authorization code lifetime.
    pub auth_code_secs: i64,
    /// Device authorization: device code lifetime.
    pub device_code_secs: i64,
    /// Device authorization: minimum seconds between polls.
    pub device_poll_interval_secs: i64,
    /// Event channel: where Socket.IO is served.
    pub socket_path: String,
    /// Event channel: seconds a socket may stay unauthenticated.
    pub socket_auth_timeout_secs: u64,
    /// Event channel: live sockets per user, across nodes.
    pub socket_max_per_user: usize,
    /// Event channel: largest message accepted, in bytes.
    pub socket_max_payload_bytes: u64,
    /// Providers: this deployment's name, carried in every provider state.
    pub runtime_environment: String,
    /// Providers: base of callback URLs instead of `public_url`.
    pub auth_origin: Option<String>,
    /// Providers: other deployments' public URLs, by name (callback routing
    /// and the relay go there, and nowhere else).
    pub environments: BTreeMap<String, String>,
    /// Upstream providers, by name (`[providers.NAME]` tables).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Providers: where the browser lands after connecting (default: Tessera's page).
    pub connect_success_url: Option<String>,
    /// Che's OAuth API: origins `redirect_after_login` may point to.
    pub oauth_redirect_origins: Vec<String>,
    /// Load balancers (IP addresses) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Relay: largest forwarded request body, in bytes.
    pub relay_max_bytes: usize,
    /// Shutdown: seconds from the first SIGTERM/SIGINT to exit. Readiness
    /// is 503 throughout; new connections are accepted until one second
    /// before the end, and accepted requests are answered.
    pub drain_secs: u64,
    /// Slow clients: seconds a request head may take to arrive, from the
    /// connection's opening or the head's first byte.
    pub header_read_timeout_secs: u64,
    /// Slow clients: seconds a keep-alive connection may wait for its next request.
    pub idle_timeout_secs: u64,
    /// Open connections at most (websockets included); past it, new ones
    /// wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        let password = PasswordConfig::default();
        let throttle = ThrottleConfig::default();
        let http = HttpSettings::default();
        let consent = ConsentConfig::default();
        let channel = ChannelConfig::default();
        let browser = BrowserConfig::default();
        Self {
            data_dir: PathBuf::from("./tessera-data"),
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            database_url: None,
            default_realm: http.default_realm,
            log_format: "text".into(),
            log_level: "info".into(),
            refresh_reuse_grace_ms: tessera_core::model::defaults::REFRESH_REUSE_GRACE_MS,
            catalog_ttl_ms: 2_000,
            session_cache_ms: 1_000,
            session_cache_max: 10_000,
            max_body_bytes: http.max_body_bytes,
            che_client_id: http.che_client_id,
            password_memory_kib: password.memory_kib,
            password_iterations: password.iterations,
            password_parallelism: password.parallelism,
            password_max_concurrent: password.max_concurrent,
            login_max_failures: throttle.max_failures,
            login_window_secs: throttle.window_secs,
            login_address_max_failures: throttle.address_max_failures,
            login_address_window_secs: throttle.address_window_secs,
            device_requests_per_address: throttle.device_requests_per_address,
            device_requests_per_realm: throttle.device_requests_per_realm,
            user_code_failures_per_address: throttle.user_code_failures_per_address,
            user_code_failures_per_realm: throttle.user_code_failures_per_realm,
            device_rate_window_secs: throttle.device_window_secs,
            gc_interval_secs: 600,
            gc_batch_size: GcConfig::default().batch,
            consent_access_token_secs: consent.access_token_ttl_secs,
            consent_refresh_token_secs: consent.refresh_token_ttl_secs,
            consent_challenge_secs: consent.challenge_ttl_secs,
            consent_host: None,
            sso_session_secs: browser.sso_session_max_secs,
            auth_code_secs: browser.code_ttl_secs,
            device_code_secs: browser.device_code_ttl_secs,
            device_poll_interval_secs: browser.device_poll_interval_secs,
            socket_path: channel.path,
            socket_auth_timeout_secs: channel.auth_timeout.as_secs(),
            socket_max_per_user: channel.max_sockets_per_user,
            socket_max_payload_bytes: channel.max_payload,
            runtime_environment: "default".into(),
            auth_origin: None,
            environments: BTreeMap::new(),
            providers: BTreeMap::new(),
            connect_success_url: None,
            oauth_redirect_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            relay_max_bytes: 1024 * 1024,
            drain_secs: 5,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 50_000,
        }
    }
}

/// Environment variables that are not configuration keys.
const NOT_CONFIG: &[&str] = &[
    "config",
    "master_key",
    "bootstrap_admin_password",
    "admin_password",
    // The developer commands' own settings.
    "cli_home",
    "cli_keyring",
];

impl Config {
    /// Loads defaults <- file <- environment. Flags are applied by the caller.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_from(file, std::env::vars())
    }

    fn load_from(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        let defaults = serde_json::to_value(Config::default())?;
        let defaults = defaults.as_object().cloned().unwrap_or_default();
        for (name, raw) in env {
            let Some(key) = name.strip_prefix("TESSERA_").map(str::to_lowercase) else {
                continue;
            };
            if NOT_CONFIG.contains(&key.as_str()) || key.starts_with("test_") {
                continue;
            }
            let Some(default) = defaults.get(&key) else {
                // Other tools share the prefix (test harnesses, wrappers): warn, don't fail.
                eprintln!("warning: ignoring {name}: not a Tessera setting");
                continue;
            };
            table.insert(key, env_value(&raw, default));
        }
        let config: Config = table
            .try_into()
            .context("invalid configuration (file or TESSERA_* environment)")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("log_format must be \"text\" or \"json\"");
        }
        if let Some(url) = &self.public_url {
            let parsed =
                url::Url::parse(url).with_context(|| format!("public_url {url:?} is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("public_url must be an http or https URL");
            }
        }
        if self.default_realm == tessera_oauth::provision::MASTER_REALM {
            bail!(
                "default_realm must not be the admin realm ({}): self-service flows act in the default realm",
                tessera_oauth::provision::MASTER_REALM
            );
        }
        for (name, value) in [
            ("login_max_failures", self.login_max_failures),
            (
                "login_address_max_failures",
                self.login_address_max_failures,
            ),
            (
                "device_requests_per_address",
                self.device_requests_per_address,
            ),
            ("device_requests_per_realm", self.device_requests_per_realm),
            (
                "user_code_failures_per_address",
                self.user_code_failures_per_address,
            ),
            (
                "user_code_failures_per_realm",
                self.user_code_failures_per_realm,
            ),
        ] {
            if value < 1 {
                bail!("{name} must be at least 1");
            }
        }
        for (name, secs) in [
            ("login_window_secs", self.login_window_secs),
            ("login_address_window_secs", self.login_address_window_secs),
            ("device_rate_window_secs", self.device_rate_window_secs),
        ] {
            // Windows are collected a day after they start.
            if !(1..=86_400).contains(&secs) {
                bail!("{name} must be between 1 and 86400 seconds");
            }
        }
        // Within the window a spent token still yields its unused successor:
        // a long one would all but turn reuse detection off.
        if !(0..=60_000).contains(&self.refresh_reuse_grace_ms) {
            bail!("refresh_reuse_grace_ms must be between 0 and 60000");
        }
        if !self.socket_path.starts_with('/') || self.socket_path.len() < 2 {
            bail!("socket_path must be a path like /socket.io");
        }
        if self.socket_auth_timeout_secs < 1 || self.socket_max_per_user < 1 {
            bail!("socket_auth_timeout_secs and socket_max_per_user must be at least 1");
        }
        if self.gc_batch_size < 1 {
            bail!("gc_batch_size must be at least 1");
        }
        for (name, secs, max) in [
            ("drain_secs", self.drain_secs, 300),
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                300,
            ),
            ("idle_timeout_secs", self.idle_timeout_secs, 3_600),
        ] {
            if !(1..=max).contains(&secs) {
                bail!("{name} must be between 1 and {max} seconds");
            }
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            bail!("max_connections must be between 1 and 1000000");
        }
        for (name, secs) in [
            ("consent_access_token_secs", self.consent_access_token_secs),
            (
                "consent_refresh_token_secs",
                self.consent_refresh_token_secs,
            ),
            ("consent_challenge_secs", self.consent_challenge_secs),
            ("sso_session_secs", self.sso_session_secs),
            ("auth_code_secs", self.auth_code_secs),
            ("device_code_secs", self.device_code_secs),
            ("device_poll_interval_secs", self.device_poll_interval_secs),
        ] {
            if secs < 1 {
                bail!("{name} must be at least 1");
            }
        }
        self.connect()
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(url) = &self.consent_host {
            url::Url::parse(url).with_context(|| format!("consent_host {url:?} is not a URL"))?;
        }
        Ok(())
    }

    pub fn oauth(&self, public_url: &str) -> OAuthConfig {
        let mut c = OAuthConfig::new(public_url);
        c.refresh_reuse_grace_ms = self.refresh_reuse_grace_ms;
        c.catalog_ttl_ms = self.catalog_ttl_ms;
        c.session_cache_ms = self.session_cache_ms;
        c.session_cache_max = self.session_cache_max;
        c.password = PasswordConfig {
            memory_kib: self.password_memory_kib,
            iterations: self.password_iterations,
            parallelism: self.password_parallelism,
            max_concurrent: self.password_max_concurrent,
        };
        c.throttle = ThrottleConfig {
            max_failures: self.login_max_failures,
            window_secs: self.login_window_secs,
            address_max_failures: self.login_address_max_failures,
            address_window_secs: self.login_address_window_secs,
            device_requests_per_address: self.device_requests_per_address,
            device_requests_per_realm: self.device_requests_per_realm,
            user_code_failures_per_address: self.user_code_failures_per_address,
            user_code_failures_per_realm: self.user_code_failures_per_realm,
            device_window_secs: self.device_rate_window_secs,
        };
        c.consent = ConsentConfig {
            challenge_ttl_secs: self.consent_challenge_secs,
            access_token_ttl_secs: self.consent_access_token_secs,
            refresh_token_ttl_secs: self.consent_refresh_token_secs,
            host: self.consent_host.clone(),
        };
        c.browser = BrowserConfig {
            sso_session_max_secs: self.sso_session_secs,
            code_ttl_secs: self.auth_code_secs,
            device_code_ttl_secs: self.device_code_secs,
            device_poll_interval_secs: self.device_poll_interval_secs,
            ..BrowserConfig::default()
        };
        c
    }

    pub fn channel(&self) -> ChannelConfig {
        ChannelConfig {
            path: self.socket_path.trim_end_matches('/').to_string(),
            auth_timeout: std::time::Duration::from_secs(self.socket_auth_timeout_secs),
            max_sockets_per_user: self.socket_max_per_user,
            max_payload: self.socket_max_payload_bytes,
        }
    }

    pub fn gc(&self) -> GcConfig {
        GcConfig {
            batch: self.gc_batch_size,
            ..GcConfig::default()
        }
    }

    pub fn connect(&self) -> ConnectConfig {
        ConnectConfig {
            runtime_environment: self.runtime_environment.clone(),
            auth_origin: self.auth_origin.clone(),
            environments: self.environments.clone(),
            providers: self.providers.clone(),
            success_url: self.connect_success_url.clone(),
            redirect_origins: self.oauth_redirect_origins.clone(),
            default_realm: self.default_realm.clone(),
            relay_max_bytes: self.relay_max_bytes,
        }
    }

    pub fn server_limits(&self) -> crate::server::Limits {
        use std::time::Duration;
        crate::server::Limits {
            drain: Duration::from_secs(self.drain_secs),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
        }
    }

    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            default_realm: self.default_realm.clone(),
            che_client_id: self.che_client_id.clone(),
            max_body_bytes: self.max_body_bytes,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

/// An environment value as TOML, typed like the setting's default: numbers
/// and booleans are parsed (and a bad one is a clear error later), anything
/// else stays a string, so `TESSERA_DEFAULT_REALM=2024` is the realm "2024".
fn env_value(raw: &str, default: &serde_json::Value) -> toml::Value {
    let parsed = match default {
        serde_json::Value::Number(n) if n.is_f64() => {
            raw.trim().parse::<f64>().ok().map(toml::Value::Float)
        }
        serde_json::Value::Number(_) => raw.trim().parse::<i64>().ok().map(toml::Value::Integer),
        serde_json::Value::Bool(_) => raw.trim().parse::<bool>().ok().map(toml::Value::Boolean),
        _ => None,
    };
    parsed.unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\ndefault_realm = \"che\"\nlogin_max_failures = 3\n",
        )
        .expect("write");
        let c = Config::load_from(
            Some(&path),
            env(&[
                ("TESSERA_DEFAULT_REALM", "2024"),
                ("TESSERA_LOGIN_WINDOW_SECS", "5"),
                ("TESSERA_MASTER_KEY", "x"),
                ("HOME", "/root"),
            ]),
        )
        .expect("load");
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(
            c.default_realm, "2024",
            "environment beats the file, typed as the setting"
        );
        assert_eq!(c.login_max_failures, 3);
        assert_eq!(c.login_window_secs, 5);
        assert_eq!(c.data_dir, PathBuf::from("./tessera-data"));
    }

    #[test]
    fn providers_and_environments_come_from_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            r#"
runtime_environment = "a"
auth_origin = "https://auth.example"
oauth_redirect_origins = ["https://ide.example"]
[environments]
b = "https://b.example"
[providers.acme]
kind = "oidc"
issuer = "http://127.0.0.1:3000"
client_id = "tessera"
client_secret_env = "ACME_SECRET"
scopes = ["openid", "email"]
[providers.github]
kind = "github"
client_id = "gh"
"#,
        )
        .expect("write");
        let c = Config::load_from(Some(&path), env(&[])).expect("load");
        let connect = c.connect();
        assert_eq!(connect.runtime_environment, "a");
        assert_eq!(connect.environments["b"], "https://b.example");
        assert_eq!(connect.providers.len(), 2);
        assert_eq!(connect.default_realm, "tessera");
        let spec = connect.providers["acme"]
            .resolve("acme", &|k| (k == "ACME_SECRET").then(|| "s".to_string()))
            .expect("resolve");
        assert_eq!(spec.scopes, vec!["openid", "email"]);

        for bad in [
            "[environments]\nb = \"not a url\"\n",
            "runtime_environment = \"a b\"\n",
            "[providers.x]\nkind = \"oidc\"\nclient_id = \"t\"\nissuer = \"https://x\"\nsurprise = 1\n",
            "[providers.x]\nkind = \"saml\"\nclient_id = \"t\"\n",
        ] {
            std::fs::write(&path, bad).expect("write");
            assert!(Config::load_from(Some(&path), env(&[])).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_settings_are_errors() {
        let ignored = Config::load_from(None, env(&[("TESSERA_LISTEN_ADDR", "x")]))
            .expect("unknown env is ignored");
        assert_eq!(ignored.listen, "127.0.0.1:8080");
        assert!(Config::load_from(None, env(&[("TESSERA_LOGIN_MAX_FAILURES", "many")])).is_err());
        // Self-service flows act in the default realm: it is never the admin realm.
        let admin_realm = Config::load_from(None, env(&[("TESSERA_DEFAULT_REALM", "master")]));
        assert!(admin_realm
            .err()
            .is_some_and(|e| e.to_string().contains("admin realm")));
        assert_eq!(
            Config::load_from(None, env(&[]))
                .expect("defaults")
                .default_realm,
            "tessera"
        );
        assert!(Config::load_from(None, env(&[("TESSERA_PUBLIC_URL", "ftp://x")])).is_err());
        for (key, bad) in [
            ("TESSERA_DRAIN_SECS", "0"),
            ("TESSERA_DRAIN_SECS", "301"),
            ("TESSERA_HEADER_READ_TIMEOUT_SECS", "0"),
            ("TESSERA_IDLE_TIMEOUT_SECS", "0"),
            ("TESSERA_MAX_CONNECTIONS", "0"),
            ("TESSERA_REFRESH_REUSE_GRACE_MS", "-1"),
            ("TESSERA_REFRESH_REUSE_GRACE_MS", "3600000"),
        ] {
            assert!(
                Config::load_from(None, env(&[(key, bad)])).is_err(),
                "{key}={bad}"
            );
        }
        let limits = Config::load_from(None, env(&[("TESSERA_DRAIN_SECS", "2")]))
            .expect("drain")
            .server_limits();
        assert_eq!(limits.drain, std::time::Duration::from_secs(2));
        assert_eq!(limits.max_connections, 50_000);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "no_such_key = 1\n").expect("write");
        assert!(Config::load_from(Some(&path), env(&[])).is_err());
        assert!(Config::load_from(Some(&dir.path().join("missing.toml")), env(&[])).is_err());
    }
}
