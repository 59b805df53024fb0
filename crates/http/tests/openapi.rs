//! The OpenAPI document against the router: every route the app serves is
//! in `/openapi.json` or in `openapi::NOT_IN_DOCUMENT`, every documented
//! operation is served, the document is OpenAPI 3.1, and Swagger UI is
//! served with its Content-Security-Policy.
//!
//! The router's routes are read from the router itself, not from a list
//! kept beside it: axum has no public route listing, but `Router`'s `Debug`
//! prints every registered path and, per path, its method router's `Allow`
//! list ([`router_routes`]). A route added anywhere, in any module, therefore
//! shows up here. Should a new axum print its routes differently,
//! `router_routes` misses known routes and the test fails loudly instead of
//! passing with nothing to compare.

mod common;

use axum::http::{header, StatusCode};
use common::{Backend, TestApp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tessera_http::openapi::NOT_IN_DOCUMENT;

/// The routes registered in the router with their methods, as axum's
/// `Debug` prints them: `routes: {RouteId(n): MethodRouter(MethodRouter {
/// ..., allow_header: Bytes(b"GET,HEAD,POST") })}` and `paths:
/// {RouteId(n): "/path"}`. A route without an `Allow` list (one that takes
/// any method) gets the method `*`.
fn router_routes(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let debug = format!("{:?}", app.router);
    // The routes, not the fallback router (which has `/` and a catch-all).
    let routes = debug
        .split_once("fallback_router")
        .map_or(debug.as_str(), |(routes, _)| routes);
    let mut paths = BTreeMap::new();
    let mut methods = BTreeMap::new();
    for chunk in routes.split("RouteId(").skip(1) {
        let Some((id, rest)) = chunk.split_once("): ") else {
            continue;
        };
        if let Some(path) = rest.strip_prefix('"') {
            let path = &path[..path.find('"').expect("closing quote")];
            paths.insert(id.to_string(), path.to_string());
        } else if let Some(i) = rest.find("allow_header: Bytes(b\"") {
            let allow = &rest[i + "allow_header: Bytes(b\"".len()..];
            let allow = &allow[..allow.find('"').expect("closing quote")];
            let list: Vec<String> = allow
                .split(',')
                .map(|m| m.trim().to_ascii_uppercase())
                .filter(|m| !m.is_empty() && m != "HEAD")
                .collect();
            methods.insert(id.to_string(), list);
        } else {
            methods.insert(id.to_string(), vec!["*".to_string()]);
        }
    }
    let out: BTreeMap<String, Vec<String>> = paths
        .into_iter()
        .filter(|(_, path)| !path.contains("__private__axum"))
        .map(|(id, path)| {
            let m = methods.remove(&id).unwrap_or_else(|| vec!["*".to_string()]);
            (path, m)
        })
        .collect();
    for (known, method) in [
        ("/admin/realms", "POST"),
        ("/health/live", "GET"),
        ("/openapi.json", "GET"),
        ("/api/machine/token/{wsid}", "GET"),
    ] {
        assert!(
            out.get(known)
                .is_some_and(|m| m.iter().any(|x| x == method)),
            "route listing from Router's Debug no longer works (no {method} {known}); \
             fix router_routes"
        );
    }
    out
}

/// Whether `METHOD path` is on the exclusion list (an entry without a
/// method excludes every method; `/prefix/*` everything under it).
fn excluded(method: &str, path: &str) -> bool {
    NOT_IN_DOCUMENT.iter().any(|entry| {
        let (m, p) = match entry.split_once(' ') {
            Some((m, p)) => (Some(m), p),
            None => (None, *entry),
        };
        let path_matches = match p.strip_suffix("/*") {
            Some(prefix) => path.starts_with(&format!("{prefix}/")),
            None => p == path,
        };
        // `method` "" asks whether the entry excludes every method.
        path_matches && m.is_none_or(|m| m == method)
    })
}

async fn document(app: &TestApp) -> Value {
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with("application/json"));
    r.body
}

/// (METHOD, path) of every documented operation.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "options", "head"] {
            if item.get(method).is_some() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_or_excluded_and_every_operation_is_served() {
    let app = common::app(Backend::Sqlite).await.expect("sqlite app");
    let doc = document(&app).await;
    let documented = documented(&doc);

    let mut served = BTreeSet::new();
    let mut missing = Vec::new();
    for (path, methods) in router_routes(&app) {
        // `/realms/...` and `/admin/...` are served under `/auth` too; the
        // document lists them once, at the root.
        let doc_path = match path.strip_prefix("/auth") {
            Some(rest) if rest.starts_with("/realms/") || rest.starts_with("/admin/") => {
                rest.to_string()
            }
            _ => path.clone(),
        };
        // Excluded whatever the method (the relay takes any method, so
        // cannot be probed with TRACE).
        if excluded("", &doc_path) {
            continue;
        }
        for method in methods {
            served.insert((method.clone(), doc_path.clone()));
            if !documented.contains(&(method.clone(), doc_path.clone()))
                && !excluded(&method, &doc_path)
            {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes neither in the OpenAPI document nor in openapi::NOT_IN_DOCUMENT \
         (add #[utoipa::path] to the handler and list it in its module's Api):\n  {}",
        missing.join("\n  ")
    );
    let stale: Vec<_> = documented
        .iter()
        .filter(|op| !served.contains(*op))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        stale.is_empty(),
        "documented operations the router does not serve:\n  {}",
        stale.join("\n  ")
    );
    // Nothing on the exclusion list is documented anyway (it would be stale).
    for (m, p) in &documented {
        assert!(!excluded(m, p), "{m} {p} is documented and excluded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_with_the_bearer_scheme_and_error_shapes() {
    let app = common::app(Backend::Sqlite).await.expect("sqlite app");
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "{version}");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "OAuthErrorBody",
        "AdminErrorBody",
        "RealmRep",
        "TokenResponse",
    ] {
        assert!(schemas.get(name).is_some(), "no schema {name}");
    }
    // Admin operations name the bearer scheme and the Admin error shapes.
    let list = &doc["paths"]["/admin/realms"]["get"];
    assert_eq!(list["security"][0]["bearer"], serde_json::json!([]));
    assert!(list["responses"]["401"].is_object());
    // Every `$ref` names a schema the document has.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').expect("closing quote")];
        assert!(schemas.get(name).is_some(), "dangling $ref to {name}");
    }
    // Every operation id is unique (Swagger UI's deep links use them).
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("item").values() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_with_its_csp_and_cached_assets() {
    let app = common::app(Backend::Sqlite).await.expect("sqlite app");
    let r = app.get("/swagger", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .expect("script-src");
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    let html = r.body.as_str().expect("html");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("<style"), "no inline style element");
    // Every asset the page names is served, with its type and caching.
    let mut assets = 0;
    for part in html.split("src=\"").chain(html.split("href=\"")).skip(1) {
        let Some(end) = part.find('"') else { continue };
        let url = format!("/{}", &part[..end]);
        if !url.starts_with("/swagger/") {
            continue;
        }
        let a = app.get(&url, None).await;
        assert_eq!(a.status, StatusCode::OK, "{url}");
        let ct = a.headers[header::CONTENT_TYPE].to_str().expect("ascii");
        assert!(
            ct.starts_with("text/javascript") || ct.starts_with("text/css"),
            "{url}: {ct}"
        );
        assert!(a.headers.contains_key(header::CACHE_CONTROL), "{url}");
        assets += 1;
    }
    assert!(assets >= 3, "bundle, stylesheet and initializer");
    let r = app.get("/swagger/", None).await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
}
