//! Request extractors: protocol forms (content type, size limit, duplicate
//! parameters), bearer tokens, request metadata, and Admin API JSON bodies.

use crate::error::{AdminError, OAuthReject};
use crate::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use tessera_core::{OAuthError, OAuthErrorCode};
use tessera_oauth::data::ClientMeta;
use tessera_oauth::Params;

/// Reads the body up to the configured limit.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, bool> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` reports the limit as a `LengthLimitError` somewhere in the chain.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return true;
            }
            source = s.source();
        }
        false
    })
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// An `application/x-www-form-urlencoded` protocol request.
pub struct Form {
    pub params: Params,
    pub authorization: Option<String>,
}

impl FromRequest<AppState> for Form {
    type Rejection = OAuthReject;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        if media_type(&parts.headers).as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            )
            .into());
        }
        let bytes = read_body(body, state.settings.max_body_bytes)
            .await
            .map_err(|too_large| {
                if too_large {
                    OAuthError::new(OAuthErrorCode::PayloadTooLarge, "request body too large")
                } else {
                    OAuthError::invalid_request("could not read request body")
                }
            })?;
        Ok(Self {
            params: Params::parse(&bytes)?,
            authorization: header_string(&parts.headers, AUTHORIZATION.as_str()),
        })
    }
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The bearer token of the `Authorization` header (RFC 6750 §2.1).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// Behind a trusted proxy, replaces the peer address with the client's: the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy
/// (entries to its left are the client's to write, so never believed).
pub async fn client_address(
    axum::extract::State(settings): axum::extract::State<std::sync::Arc<crate::HttpSettings>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let trusted = |ip: &std::net::IpAddr| settings.trusted_proxies.contains(ip);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(peer) = peer.filter(|p| trusted(&p.ip())) {
        let forwarded: Vec<std::net::IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        if let Some(client) = forwarded.into_iter().rev().find(|ip| !trusted(ip)) {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
    }
    next.run(req).await
}

/// Where the request came from, recorded on sessions.
pub struct Meta(pub ClientMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = header_string(&parts.headers, USER_AGENT.as_str())
            .map(|ua| ua.chars().take(512).collect());
        Ok(Self(ClientMeta { ip, user_agent }))
    }
}

/// A JSON Admin API body. Unknown fields are ignored (Keycloak
/// representations grow); wrong content type is 415, bad JSON 400, too big 413.
pub struct AdminJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AdminJson<T> {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        if media_type(&parts.headers).as_deref() != Some("application/json") {
            return Err(AdminError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ));
        }
        let limit = state.settings.max_body_bytes.max(1024 * 1024);
        let bytes = read_body(body, limit).await.map_err(|too_large| {
            if too_large {
                AdminError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else {
                AdminError::bad_request("could not read request body")
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| AdminError::bad_request(format!("invalid JSON: {e}")))
    }
}

/// A query-string boolean as clients send it: `true`/`false` in any case
/// (python-keycloak sends `True`), `1`/`0`.
pub fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let raw = <String as serde::Deserialize>::deserialize(d)?;
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "expected true or false, got {other:?}"
        ))),
    }
}
