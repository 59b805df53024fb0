//! The `state` parameter a provider sends back to the callback: read for its
//! `env` without a key (any environment's state arrives here), then checked
//! with the state key and decoded into claims.
//!
//! Asserts: nothing panics on any state text; no arbitrary text passes the
//! HS256 check; a state we sign gives back exactly its claims (encode ->
//! decode round trip), its `env` is readable without the key, and its
//! binding cookie name is a valid cookie name that depends on the `jti`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera_fuzz::mac_key;
use tessera_fuzz::state::{binding_cookie_name, peek_env, Flow, StateClaims};

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(String),
    Claims {
        env: String,
        jti: String,
        exp: i64,
        prv: String,
        flow: u8,
        realm: String,
        sub: Option<String>,
        sut: Option<String>,
        ret: Option<String>,
        bnd: Option<String>,
        https: bool,
    },
}

fn decode(state: &str) -> Option<StateClaims> {
    let value = mac_key("provider-state").verify_jwt(state).ok()?;
    serde_json::from_value(value).ok()
}

fuzz_target!(|input: Input| match input {
    Input::Raw(state) => {
        let _ = peek_env(&state);
        assert!(decode(&state).is_none(), "an unsigned state decoded");
    }
    Input::Claims {
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
        https,
    } => {
        let flow = match flow % 3 {
            0 => Flow::Connect,
            1 => Flow::Signup,
            _ => Flow::Che,
        };
        let claims = StateClaims {
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
        };
        let state = mac_key("provider-state").sign_jwt(&claims);
        assert_eq!(peek_env(&state).as_deref(), Some(claims.env.as_str()));
        assert_eq!(decode(&state).as_ref(), Some(&claims));
        assert!(
            mac_key("another-purpose").verify_jwt(&state).is_err(),
            "another key accepted the state"
        );

        let url = if https {
            "https://id.example"
        } else {
            "http://127.0.0.1"
        };
        let cookie = binding_cookie_name(url, &claims.jti);
        assert_eq!(cookie.starts_with("__Host-"), https);
        assert!(cookie.contains("tessera_provider_"));
        assert!(
            cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{cookie:?} is not a cookie name"
        );
    }
});
