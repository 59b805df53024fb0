//! OAuth scopes: parsing, the built-in scopes every realm offers, and the
//! defaults granted when a client asks for none.

use crate::error::OAuthError;
use std::collections::BTreeSet;

/// Scopes every realm understands (Keycloak's built-in client scopes).
pub const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "roles",
    "web-origins",
    "offline_access",
    "address",
    "phone",
    "acr",
    "basic",
    "microprofile-jwt",
];

/// Granted when the request names no scope (Keycloak's default client scopes).
pub const DEFAULT_SCOPES: &[&str] = &["profile", "email"];

/// A validated, de-duplicated, ordered set of scope names.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited scope parameter, rejecting unknown scopes.
    /// The defaults are always included, as Keycloak does.
    pub fn parse_requested(raw: Option<&str>) -> Result<Self, OAuthError> {
        let mut set: BTreeSet<String> = DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect();
        for s in raw.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            if !KNOWN_SCOPES.contains(&s) {
                return Err(OAuthError::invalid_scope(format!("unknown scope: {s}")));
            }
            set.insert(s.to_string());
        }
        Ok(Self(set))
    }

    /// Parses a scope string this server wrote itself (stored in a session).
    pub fn from_stored(raw: &str) -> Self {
        Self(
            raw.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Narrows a refresh request's scope to a subset of the original grant
    /// (RFC 6749 §6); asking for more is `invalid_scope`.
    pub fn narrow(&self, raw: Option<&str>) -> Result<Self, OAuthError> {
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            return Ok(self.clone());
        };
        let mut set = BTreeSet::new();
        for s in raw.split(' ').filter(|s| !s.is_empty()) {
            if !self.0.contains(s) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {s} was not part of the original grant"
                )));
            }
            set.insert(s.to_string());
        }
        Ok(Self(set))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// The wire form: space-separated.
    pub fn to_param(&self) -> String {
        let mut out = String::new();
        for s in &self.0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_unknown_and_narrowing() {
        let s = ScopeSet::parse_requested(Some("openid")).expect("valid");
        assert_eq!(s.to_param(), "email openid profile");
        assert!(ScopeSet::parse_requested(Some("openid admin:all")).is_err());
        assert_eq!(
            s.narrow(Some("openid")).expect("subset").to_param(),
            "openid"
        );
        assert!(s.narrow(Some("phone")).is_err());
        assert_eq!(s.narrow(None).expect("same"), s);
    }
}
