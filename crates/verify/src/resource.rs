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
    resource: String,
    /// Issuers whose tokens this resource accepts (each serves RFC 8414
    /// metadata for itself).
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    /// Only the `Authorization` header (RFC 6750 §2.1): a layer protecting
    /// a resource takes no `?token=`.
    bearer_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<String>,
    #[serde(skip)]
    url: Url,
}

/// A resource identifier that RFC 9728 §1.2 and RFC 8707 §2 allow: an
/// absolute `https` URI (plain `http` only for loopback hosts, for local
/// development), without query, fragment or user information.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("resource {0:?} must be an absolute https URL without query, fragment or user information (http only for localhost)")]
pub struct BadResource(pub String);

impl ProtectedResource {
    /// Metadata for `resource`, whose tokens come from `authorization_server`.
    /// The identifier is kept in its canonical form (lower-case host, no
    /// default port), without the lone `/` of a root resource.
    pub fn new(
        resource: impl Into<String>,
        authorization_server: impl Into<String>,
    ) -> Result<Self, BadResource> {
        let given = resource.into();
        let bad = || BadResource(given.clone());
        let url = Url::parse(&given).map_err(|_| bad())?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok
            || url.host_str().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(bad());
        }
        let canonical = url.as_str();
        let resource = if url.path() == "/" {
            canonical.trim_end_matches('/')
        } else {
            canonical
        };
        Ok(Self {
            resource: resource.to_string(),
            authorization_servers: vec![authorization_server.into()],
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".into()],
            resource_name: None,
            resource_documentation: None,
            url,
        })
    }

    /// The resource identifier, as the metadata states it.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Scopes a client may ask for at this resource (`scopes_supported`).
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Another issuer whose tokens the resource accepts.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
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
    /// `/.well-known/oauth-protected-resource/mcp`; a root resource → the
    /// bare suffix). A trailing slash stays: `https://h/mcp/` is another
    /// resource than `https://h/mcp`.
    pub fn metadata_path(&self) -> String {
        match self.url.path() {
            "/" => WELL_KNOWN.to_string(),
            path => format!("{WELL_KNOWN}{path}"),
        }
    }

    /// The absolute metadata URL, the `resource_metadata` of a 401.
    pub fn metadata_url(&self) -> String {
        let mut url = self.url.clone();
        url.set_path(&self.metadata_path());
        url.to_string()
    }

    /// A route serving the metadata at its URL (the bare well-known URL
    /// only for a root resource: at a host's root, a path resource's
    /// document would name another resource than the one asked about, RFC
    /// 9728 §3.3). Merge it into the resource server's router, outside the
    /// verify layer; several resources on one host each add their own.
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
        Router::new().route(&self.metadata_path(), get(serve))
    }

    /// Whether a token's `aud` names this resource: one entry that is the
    /// same URL (compared parsed, so `https://h` is `https://h/` and a
    /// host's case or a default port make no difference; never a prefix).
    pub(crate) fn is_audience(&self, audience: &[String]) -> bool {
        audience
            .iter()
            .any(|a| Url::parse(a).is_ok_and(|a| a == self.url))
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
            "http://127.0.0.1:8123/.well-known/oauth-protected-resource/mcp/"
        );
    }

    #[test]
    fn identifiers_are_canonical_and_audiences_match_exactly() {
        let root = ProtectedResource::new("https://MCP.example:443/", "https://as").expect("ok");
        assert_eq!(root.resource(), "https://mcp.example");
        let aud = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(root.is_audience(&aud(&["https://mcp.example"])));
        assert!(root.is_audience(&aud(&["x", "https://mcp.example/"])));
        assert!(!root.is_audience(&aud(&["https://mcp.example/mcp", "http://mcp.example"])));
        let path = ProtectedResource::new("https://mcp.example/mcp", "https://as").expect("ok");
        assert_eq!(path.resource(), "https://mcp.example/mcp");
        assert!(path.is_audience(&aud(&["https://MCP.example:443/mcp"])));
        for other in [
            "https://mcp.example/mcp/",
            "https://mcp.example/",
            "https://mcp.example/mcp2",
            "mcp",
            "",
        ] {
            assert!(!path.is_audience(&aud(&[other])), "{other}");
        }
        assert!(!path.is_audience(&[]));
    }

    #[test]
    fn resource_identifiers_are_https_urls_without_fragments() {
        for bad in [
            "mcp.example",
            "http://mcp.example/mcp",
            "https://mcp.example/mcp#frag",
            "https://mcp.example/mcp?tenant=a",
            "https://user:pw@mcp.example/mcp",
            "urn:example:mcp",
            "ftp://mcp.example",
        ] {
            assert!(ProtectedResource::new(bad, "https://as").is_err(), "{bad}");
        }
        assert!(ProtectedResource::new("http://localhost:3000/mcp", "https://as").is_ok());
    }
}
