//! Socket.IO authentication payloads as a client sends them: the CONNECT
//! packet's `auth` object (v4 handshake) and the socketio-auth
//! `authentication` event, decoded by the same parser and into the same
//! `{token}` shape as `tessera_channel` (handlers.rs `TokenPayload`), then
//! the token through the checks `tessera_channel::auth::identify` runs before
//! any database access (trim, length cap, JWS verification).
//!
//! Asserts: nothing panics on any packet; any token string survives the
//! wire intact (encode a CONNECT or `authentication` packet carrying it,
//! decode, and the same token comes out); no arbitrary token verifies.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use socketioxide_core::packet::{Packet, PacketData};
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_core::Value;
use socketioxide_parser_common::CommonParser;
use tessera_core::SigningAlg;
use tessera_fuzz::key_pair;
use tessera_keys::verify_compact;

/// The payload shape the channel reads: `{"token": "..."}`, anything else
/// ignored.
#[derive(Debug, Default, Deserialize)]
struct TokenPayload {
    #[serde(default)]
    token: Option<String>,
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// A raw Socket.IO packet as text.
    Raw(String),
    /// A token carried in a packet we encode.
    Token { token: String, event: bool },
}

/// The token a packet carries, the way the channel's handlers extract it.
fn token_of(packet: Packet) -> Option<String> {
    let parser = CommonParser;
    match packet.inner {
        PacketData::Connect(auth) => parser
            .decode_default::<TokenPayload>(auth.as_ref())
            .ok()
            .and_then(|p| p.token),
        PacketData::Event(mut value, _) => {
            let event = parser.read_event(&value).ok()?;
            if event != "authentication" {
                return None;
            }
            parser
                .decode_value::<TokenPayload>(&mut value, true)
                .ok()
                .and_then(|p| p.token)
        }
        _ => None,
    }
}

/// `identify`'s checks before it needs the database.
fn check(token: &str) {
    let token = token.trim();
    if token.is_empty() || token.len() > 16 * 1024 {
        return;
    }
    let _ = tessera_keys::decode_unverified_header(token);
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA] {
        assert!(verify_compact(token, &key_pair(alg).verifying).is_err());
    }
}

fuzz_target!(|input: Input| match input {
    Input::Raw(text) => {
        let Ok(packet) = CommonParser.decode_str(
            &ParseConfig::default(),
            &ParserState::default(),
            text.into(),
        ) else {
            return;
        };
        if let Some(token) = token_of(packet) {
            check(&token);
        }
    }
    Input::Token { token, event } => {
        let parser = CommonParser;
        let payload = serde_json::json!({ "token": token });
        let packet = if event {
            let data = parser
                .encode_value(&(payload,), Some("authentication"))
                .expect("an event encodes");
            Packet::event("/", data)
        } else {
            let data = parser.encode_default(&payload).expect("auth encodes");
            Packet::connect("/", Some(data))
        };
        let Value::Str(wire, _) = parser.encode(packet) else {
            panic!("the common parser writes text");
        };
        let decoded = parser
            .decode_str(&ParseConfig::default(), &ParserState::default(), wire)
            .expect("own packet decodes");
        assert_eq!(token_of(decoded).as_deref(), Some(token.as_str()));
        check(&token);
    }
});
