//! Rate limits on guessing, kept in the database (`ThrottleStore`) so that
//! every node counts against the same windows: N nodes do not multiply the
//! guess rate.
//!
//! - Logins: per (realm, username), every attempt counts from the moment it
//!   starts (so parallel guesses buy nothing) and a success clears the
//!   username; per source address, failures count (an attempt counts when it
//!   starts and a success gives it back), which stops password spraying (one
//!   password over many usernames). Counting by username, not by whether the
//!   user exists, reveals nothing.
//! - Device flow: requests to the device authorization endpoint, and wrong
//!   user codes on the verification page, per source address and per realm.

use crate::config::ThrottleConfig;
use std::sync::Arc;
use tessera_core::time::now_ms;
use tessera_core::OAuthError;
use tessera_store::ThrottleStore;

/// Usernames longer than this are throttled under their prefix.
const MAX_KEY_LEN: usize = 256;

pub struct LoginThrottle {
    cfg: ThrottleConfig,
    store: Arc<dyn ThrottleStore>,
}

/// A counted hit: the key and the window it landed in.
struct Hit {
    key: String,
    window_start: i64,
}

impl Hit {
    /// Takes the hit back (a success, a check that never ran); a failure to
    /// is logged, and the hit simply counts.
    async fn give_back(&self, store: &dyn ThrottleStore) {
        if let Err(e) = store.unhit(&self.key, self.window_start).await {
            tracing::warn!(error = %e, "could not give back a throttle hit");
        }
    }
}

/// One login attempt in progress. It counts as a failure unless `succeeded`
/// or `not_counted` says otherwise (so a cancelled request still counts).
pub struct Attempt {
    store: Arc<dyn ThrottleStore>,
    user: Hit,
    address: Option<Hit>,
}

impl Attempt {
    /// The password was right: the username starts afresh and the address
    /// gets its hit back.
    pub async fn succeeded(self) {
        if let Err(e) = self.store.clear_hits(&self.user.key).await {
            tracing::warn!(error = %e, "could not clear a login throttle");
        }
        self.give_back_address().await;
    }

    /// The check never ran (server busy, database error): counts neither way.
    pub async fn not_counted(self) {
        self.user.give_back(self.store.as_ref()).await;
        self.give_back_address().await;
    }

    async fn give_back_address(&self) {
        if let Some(a) = &self.address {
            a.give_back(self.store.as_ref()).await;
        }
    }
}

fn truncated(s: &str) -> &str {
    let mut cut = s.len().min(MAX_KEY_LEN);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The key of a source address: IPv4 as is, IPv6 by its /64 (one host
/// usually holds a whole /64, so single addresses would cost it nothing).
fn address_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => truncated(address).to_string(),
    }
}

/// Seconds until a window that started at `start` ends (at least 1).
fn wait_secs(start: i64, window_secs: u64, now: i64) -> u64 {
    let end = start + (window_secs as i64) * 1000;
    (((end - now).max(0) + 999) / 1000).max(1) as u64
}

impl LoginThrottle {
    pub fn new(cfg: ThrottleConfig, store: Arc<dyn ThrottleStore>) -> Self {
        Self { cfg, store }
    }

    /// One hit on `key`; `Err(too many)` once the window holds more than `max`.
    async fn count(
        &self,
        key: String,
        max: u32,
        window_secs: u64,
        refuse: fn(u64) -> OAuthError,
    ) -> Result<Hit, OAuthError> {
        let now = now_ms();
        let (hits, window_start) = self
            .store
            .hit(&key, now, (window_secs as i64) * 1000)
            .await
            .map_err(OAuthError::server_error)?;
        if hits > i64::from(max) {
            return Err(refuse(wait_secs(window_start, window_secs, now)));
        }
        Ok(Hit { key, window_start })
    }

    /// Starts a login attempt for `username` from `address`, or refuses it
    /// (`too_many_requests` with the seconds to wait) while the username or
    /// the address has used up its attempts.
    pub async fn begin(
        &self,
        realm_id: &str,
        username: &str,
        address: Option<&str>,
    ) -> Result<Attempt, OAuthError> {
        let cfg = &self.cfg;
        let user = self
            .count(
                format!("login-user/{realm_id}/{}", truncated(username)),
                cfg.max_failures,
                cfg.window_secs,
                OAuthError::too_many_requests,
            )
            .await?;
        let address = match address {
            Some(ip) => {
                let counted = self
                    .count(
                        format!("login-addr/{}", address_key(ip)),
                        cfg.address_max_failures,
                        cfg.address_window_secs,
                        OAuthError::too_many_requests,
                    )
                    .await;
                match counted {
                    Ok(hit) => Some(hit),
                    Err(e) => {
                        // Refused before any check: not the username's failure.
                        user.give_back(self.store.as_ref()).await;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        Ok(Attempt {
            store: self.store.clone(),
            user,
            address,
        })
    }

    /// Counts a device authorization request from `address`; refused when
    /// the address has made too many within the window.
    pub async fn device_request_from(&self, address: Option<&str>) -> Result<(), OAuthError> {
        let cfg = &self.cfg;
        if let Some(ip) = address {
            self.count(
                format!("device-addr/{}", address_key(ip)),
                cfg.device_requests_per_address,
                cfg.device_window_secs,
                OAuthError::rate_limited,
            )
            .await?;
        }
        Ok(())
    }

    /// Counts an authenticated client's device authorization request
    /// against its realm (after client authentication, so junk requests
    /// cannot use up the realm's allowance).
    pub async fn device_request_in(&self, realm_id: &str) -> Result<(), OAuthError> {
        let cfg = &self.cfg;
        self.count(
            format!("device-realm/{realm_id}"),
            cfg.device_requests_per_realm,
            cfg.device_window_secs,
            OAuthError::rate_limited,
        )
        .await?;
        Ok(())
    }

    /// Whether another user code may be tried from `address` in `realm_id`
    /// (counted before the lookup; a code that matches gives it back).
    pub async fn user_code_guess(
        &self,
        realm_id: &str,
        address: Option<&str>,
    ) -> Result<UserCodeGuess, OAuthError> {
        let cfg = &self.cfg;
        let address = match address {
            Some(ip) => Some(
                self.count(
                    format!("usercode-addr/{}", address_key(ip)),
                    cfg.user_code_failures_per_address,
                    cfg.device_window_secs,
                    OAuthError::rate_limited,
                )
                .await?,
            ),
            None => None,
        };
        let realm = self
            .count(
                format!("usercode-realm/{realm_id}"),
                cfg.user_code_failures_per_realm,
                cfg.device_window_secs,
                OAuthError::rate_limited,
            )
            .await;
        let realm = match realm {
            Ok(r) => r,
            Err(e) => {
                if let Some(a) = &address {
                    a.give_back(self.store.as_ref()).await;
                }
                return Err(e);
            }
        };
        Ok(UserCodeGuess {
            store: self.store.clone(),
            hits: address.into_iter().chain([realm]).collect(),
        })
    }
}

/// A counted user-code guess; `matched` gives the hits back.
pub struct UserCodeGuess {
    store: Arc<dyn ThrottleStore>,
    hits: Vec<Hit>,
}

impl UserCodeGuess {
    pub async fn matched(self) {
        for h in &self.hits {
            h.give_back(self.store.as_ref()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wait_secs;

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        use super::address_key;
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:ffff:1:2:3"),
            address_key("2001:db8:1:2::9")
        );
        assert_ne!(
            address_key("2001:db8:1:3::1"),
            address_key("2001:db8:1:2::1")
        );
    }

    #[test]
    fn waits_until_the_window_ends() {
        assert_eq!(wait_secs(0, 60, 0), 60);
        assert_eq!(wait_secs(0, 60, 59_001), 1);
        assert_eq!(wait_secs(0, 60, 61_000), 1);
        assert_eq!(wait_secs(1_000, 60, 30_500), 31);
    }
}
