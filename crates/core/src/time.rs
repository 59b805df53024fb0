//! Wall-clock helpers. Timestamps are Unix milliseconds (`i64`) everywhere,
//! as in Keycloak's representations.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whole seconds since the Unix epoch, as used in JWT `iat`/`exp`.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}
