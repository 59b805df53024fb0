//! The protected resource's side of OAuth discovery (RFC 9728): what a
//! resource server says about itself, served at its well-known URLs, and
//! named in every 401's `WWW-Authenticate` so a client that starts from a
//! bare request (an MCP client, say) finds its authorization server.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use url::Url;

/// The well-known suffix of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// RFC 9728 §2 protected resource metadata. `resource` is the resource's
/// identifier: the URI clients send as RFC 8707's `resource` parameter and
/// that tokens meant for it carry in `aud`.
#[derive(Clone, Debug, Serialize)]
pub struct ProtectedResource {
    pub resource: String,
    /// Issuers whose tokens this resource accepts (each serves RFC 8414
    /// metadata for itself).
    pub authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Only the `Authorization` header (RFC 6750 §2.1).
    pub bearer_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

/// A resource identifier that RFC 9728 §1.2 and RFC 8707 §2 allow: an
/// absolute `https` URI (plain `http` only for loopback hosts, for local
/// development), without a fragment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "resource {0:?} must be an absolute https URL without a fragment (http only for localhost)"
)]
pub struct BadResource(pub String);

impl ProtectedResource {
    /// Metadata for `resource`, whose tokens come from `authorization_server`.
    pub fn new(
        resource: impl Into<String>,
        authorization_server: impl Into<String>,
    ) -> Result<Self, BadResource> {
        let resource = resource.into();
        let url = Url::parse(&resource).map_err(|_| BadResource(resource.clone()))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok || url.fragment().is_some() || url.host_str().is_none() {
            return Err(BadResource(resource));
        }
        Ok(Self {
            resource,
            authorization_servers: vec![authorization_server.into()],
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".into()],
            resource_name: None,
            resource_documentation: None,
        })
    }

    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The path of the metadata by RFC 9728 §3.1: the well-known suffix
    /// inserted before the resource's path (`https://h/mcp` →
    /// `/.well-known/oauth-protected-resource/mcp`; a resource without a
    /// path → the bare suffix).
    pub fn metadata_path(&self) -> String {
        let path = Url::parse(&self.resource)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        format!("{WELL_KNOWN}{path}")
    }

    /// The absolute metadata URL, the `resource_metadata` of a 401.
    pub fn metadata_url(&self) -> String {
        match Url::parse(&self.resource) {
            Ok(mut u) => {
                u.set_path(&self.metadata_path());
                u.set_query(None);
                u.to_string()
            }
            Err(_) => String::new(),
        }
    }

    /// Routes serving the metadata at its path-inserted URL and, for clients
    /// that try the host's root first, at the bare well-known URL. Merge
    /// them into the resource server's router, outside the verify layer.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let doc = Arc::new(self.clone());
        let serve = move || {
            let doc = doc.clone();
            async move {
                (
                    [(header::CACHE_CONTROL, "max-age=3600")],
                    Json(doc.as_ref().clone()),
                )
                    .into_response()
            }
        };
        let mut router = Router::new().route(WELL_KNOWN, get(serve.clone()));
        let path = self.metadata_path();
        if path != WELL_KNOWN {
            router = router.route(&path, get(serve));
        }
        router
    }

    /// Whether a token's `aud` names this resource.
    pub(crate) fn is_audience(&self, audience: &[String]) -> bool {
        audience.iter().any(|a| a == &self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_insert_the_well_known_before_the_path() {
        let r = ProtectedResource::new("https://mcp.example/tools/mcp", "https://as/realms/r")
            .expect("valid");
        assert_eq!(
            r.metadata_url(),
            "https://mcp.example/.well-known/oauth-protected-resource/tools/mcp"
        );
        let root = ProtectedResource::new("https://mcp.example", "https://as").expect("valid");
        assert_eq!(
            root.metadata_url(),
            "https://mcp.example/.well-known/oauth-protected-resource"
        );
        let port = ProtectedResource::new("http://127.0.0.1:8123/mcp/", "https://as").expect("ok");
        assert_eq!(
            port.metadata_url(),
            "http://127.0.0.1:8123/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn resource_identifiers_are_https_urls_without_fragments() {
        for bad in [
            "mcp.example",
            "http://mcp.example/mcp",
            "https://mcp.example/mcp#frag",
            "urn:example:mcp",
            "ftp://mcp.example",
        ] {
            assert!(ProtectedResource::new(bad, "https://as").is_err(), "{bad}");
        }
        assert!(ProtectedResource::new("http://localhost:3000/mcp", "https://as").is_ok());
    }
}
