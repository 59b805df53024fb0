//! The `state` parameter sent to providers: an HS256 JWT under a key derived
//! from the master key, naming the runtime environment, the flow, the user or
//! sign-up, and the provider. It expires after 10 minutes and is single use:
//! its `jti` names a stored row (holding the sealed PKCE verifier and nonce)
//! that the callback deletes.
//!
//! Another environment cannot check the signature (its master key differs),
//! so it reads only `env` from the payload, and only to choose where to send
//! the browser among the environments it is configured with.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How long a provider round trip may take.
pub const STATE_TTL_SECS: i64 = 600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// A signed-in user connects a provider (CodeStream "Connect to X").
    Connect,
    /// An anonymous client signs up with a provider (CodeStream "Sign up with X").
    Signup,
    /// Che's `/api/oauth/authenticate`; the browser returns to `ret`.
    Che,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateClaims {
    /// The runtime environment that issued the state.
    pub env: String,
    pub jti: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// The provider the state is for.
    pub prv: String,
    pub flow: Flow,
    /// Internal realm id.
    pub realm: String,
    /// The user connecting (Connect, Che).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The hash of the sign-up token (Signup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sut: Option<String>,
    /// Where Che's browser goes afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
    /// The hash of the secret in the starting browser's binding cookie: the
    /// callback must come back to that browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bnd: Option<String>,
}

/// The binding cookie of the round trip `jti`: one per flow, so parallel
/// flows in one browser do not overwrite each other. Only the `jti`'s first
/// 16 ASCII letters and digits go in (all of ours are hex), so any `jti`
/// makes a valid cookie name and never splits a character.
pub fn binding_cookie(jti: &str) -> String {
    let tag: String = jti
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("tessera_provider_{tag}")
}

/// The binding cookie's name on a deployment at `public_url`: `__Host-`
/// over https (host-only, Secure, Path=/), so a sibling domain cannot plant
/// one for the victim's browser.
pub fn binding_cookie_name(public_url: &str, jti: &str) -> String {
    let name = binding_cookie(jti);
    if public_url.starts_with("https://") {
        format!("__Host-{name}")
    } else {
        name
    }
}

/// The `env` claim of a state, without checking anything else.
pub fn peek_env(state: &str) -> Option<String> {
    let mut parts = state.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("env")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_keys::MasterKey;

    #[test]
    fn binding_cookies_are_host_only_over_https() {
        assert_eq!(
            binding_cookie_name("https://id.example", "0123456789abcdef0123"),
            "__Host-tessera_provider_0123456789abcdef"
        );
        assert_eq!(
            binding_cookie_name("http://127.0.0.1:8080", "0123456789abcdef0123"),
            "tessera_provider_0123456789abcdef"
        );
    }

    /// Found by the `provider_state` fuzz target: a `jti` whose 16th byte
    /// fell inside a character panicked (byte slicing).
    #[test]
    fn binding_cookie_takes_any_jti() {
        assert_eq!(
            binding_cookie("abcdefghijklmnoȜpq"),
            "tessera_provider_abcdefghijklmnop"
        );
        assert_eq!(binding_cookie("a;b=c é"), "tessera_provider_abc");
        assert_eq!(binding_cookie(""), "tessera_provider_");
    }

    #[test]
    fn env_is_readable_without_the_key() {
        let key = MasterKey::generate().mac_key("provider-state");
        let claims = StateClaims {
            env: "b".into(),
            jti: "j".into(),
            exp: 1,
            prv: "acme".into(),
            flow: Flow::Connect,
            realm: "r".into(),
            sub: Some("u".into()),
            sut: None,
            ret: None,
            bnd: None,
        };
        let token = key.sign_jwt(&claims);
        assert_eq!(peek_env(&token).as_deref(), Some("b"));
        assert_eq!(peek_env("not-a-state"), None);
        assert_eq!(peek_env("a.%%%.c"), None);
        let parsed: StateClaims =
            serde_json::from_value(key.verify_jwt(&token).expect("verify")).expect("claims");
        assert_eq!(parsed, claims);
        let other = MasterKey::generate().mac_key("provider-state");
        assert!(other.verify_jwt(&token).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use tessera_keys::MasterKey;

    fn claims() -> impl Strategy<Value = StateClaims> {
        let opt = || proptest::option::of("\\PC{0,30}");
        (
            ("\\PC{0,12}", "[0-9a-f]{32}", any::<i64>(), "\\PC{0,12}"),
            prop_oneof![Just(Flow::Connect), Just(Flow::Signup), Just(Flow::Che)],
            ("\\PC{0,12}", opt(), opt(), opt(), opt()),
        )
            .prop_map(
                |((env, jti, exp, prv), flow, (realm, sub, sut, ret, bnd))| StateClaims {
                    env,
                    jti,
                    exp,
                    prv,
                    flow,
                    realm,
                    sub,
                    sut,
                    ret,
                    bnd,
                },
            )
    }

    proptest! {
        /// Encode -> decode: a signed state gives back exactly its claims,
        /// and its `env` is readable without the key.
        #[test]
        fn state_round_trip(claims in claims()) {
            let key = MasterKey::from_bytes([3; 32]).mac_key("provider-state");
            let token = key.sign_jwt(&claims);
            prop_assert_eq!(peek_env(&token), Some(claims.env.clone()));
            let back: StateClaims =
                serde_json::from_value(key.verify_jwt(&token).expect("verifies")).expect("claims");
            prop_assert_eq!(back, claims);
        }

        /// Any jti makes a cookie name of letters, digits and `_`.
        #[test]
        fn binding_cookie_names_are_tokens(jti in "\\PC{0,40}") {
            let name = binding_cookie(&jti);
            prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
    }
}
