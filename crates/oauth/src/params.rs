//! A protocol request's form parameters, parsed once. Duplicate parameters
//! are rejected (RFC 6749 §3.1, §3.2) and empty values count as absent.

use std::collections::HashSet;
use tessera_core::OAuthError;

/// No protocol request needs more; bounds the work done on unauthenticated input.
pub const MAX_PARAMS: usize = 64;

#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| OAuthError::invalid_request("malformed form body"))?;
        Self::from_pairs(pairs)
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        if pairs.len() > MAX_PARAMS {
            return Err(OAuthError::invalid_request(format!(
                "too many parameters (at most {MAX_PARAMS})"
            )));
        }
        let mut seen = HashSet::with_capacity(pairs.len());
        for (k, _) in &pairs {
            if !seen.insert(k.as_str()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {k} is included more than once"
                )));
            }
        }
        Ok(Self(pairs))
    }

    /// The value of `name`, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter: {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_rejected_and_empty_is_absent() {
        assert!(Params::parse(b"a=1&a=2").is_err());
        let p = Params::parse(b"a=1&b=&c=x%20y").expect("valid");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
        assert!(p.require("b").is_err());
        let many: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=x&")).collect();
        assert!(Params::parse(many.as_bytes()).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Serialize -> parse: distinct parameters come back with their
        /// values (empty ones as absent), whatever characters they hold.
        #[test]
        fn forms_round_trip(pairs in proptest::collection::btree_map("\\PC{1,12}", "\\PC{0,20}", 0..10)) {
            let body = serde_urlencoded::to_string(&pairs).expect("encodes");
            let params = Params::parse(body.as_bytes()).expect("distinct names parse");
            for (name, value) in &pairs {
                prop_assert_eq!(params.get(name), Some(value.as_str()).filter(|v| !v.is_empty()));
            }
        }

        /// A repeated name is refused however the body is arranged.
        #[test]
        fn duplicates_are_refused(
            pairs in proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,8}", 1..6),
            second in "\\PC{0,8}",
        ) {
            let pairs: BTreeMap<String, String> = pairs;
            let mut list: Vec<(String, String)> = pairs.into_iter().collect();
            list.push((list[0].0.clone(), second));
            let body = serde_urlencoded::to_string(&list).expect("encodes");
            prop_assert!(Params::parse(body.as_bytes()).is_err());
        }
    }
}
