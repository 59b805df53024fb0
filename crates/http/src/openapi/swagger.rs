//! Swagger UI at `/swagger`: Swagger UI's own bundle and stylesheet,
//! vendored in `assets/swagger-ui/` (see its README for the version and
//! origin) and compiled into the binary, so the UI needs no CDN and no
//! network at build time.
//!
//! The index page loads three files from `/swagger/` and nothing else; its
//! initializer is a file of its own ([`INIT_JS`]), not an inline script.
//! The pages' Content-Security-Policy (`pages::Page`) cannot serve Swagger
//! UI as it is: the UI renders with inline `style` attributes (React), and
//! its stylesheet draws icons from `data:` URLs. So `/swagger` has its own
//! policy, [`CSP`]: scripts and stylesheets from this origin only, no
//! `unsafe-eval`, no inline script; `style-src-attr 'unsafe-inline'` is the
//! one relaxation (attributes only: `<style>` elements still have to come
//! from this origin), and `connect-src 'self'` lets "Try it out" call this
//! server and nothing else.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// The vendored swagger-ui-dist version (assets/swagger-ui/README.md). It
/// is part of the assets' URLs, so they can be cached for good.
macro_rules! ui_version {
    () => {
        "5.35.0"
    };
}
const UI_VERSION: &str = ui_version!();
/// Swagger UI's bundle.
const BUNDLE_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
/// Swagger UI's stylesheet.
const CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");
/// Starts Swagger UI on the document (`/openapi.json`, relative to the page).
const INIT_JS: &str = r##""use strict";
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    validatorUrl: null
  });
});
"##;

const INDEX_HTML: &str = concat!(
    r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tessera API</title>
<link rel="stylesheet" href="swagger/"#,
    ui_version!(),
    r#"/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger/"#,
    ui_version!(),
    r#"/swagger-ui-bundle.js"></script>
<script src="swagger/init.js"></script>
</body>
</html>
"#
);

/// `/swagger`'s Content-Security-Policy (why each relaxation: module docs).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The vendored assets' URLs name their version: a year, immutable.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/swagger", get(index))
        // `/swagger/` would resolve the page's relative asset URLs one level
        // too deep: send it to the one canonical address.
        .route(
            "/swagger/",
            get(|| async { Redirect::permanent("../swagger") }),
        )
        .route(
            &format!("/swagger/{UI_VERSION}/swagger-ui-bundle.js"),
            get(|| async { asset(JS, BUNDLE_JS, ASSET_CACHE) }),
        )
        .route(
            &format!("/swagger/{UI_VERSION}/swagger-ui.css"),
            get(|| async { asset("text/css; charset=utf-8", CSS, ASSET_CACHE) }),
        )
        // Ours, and it may change with any release: revalidated.
        .route(
            "/swagger/init.js",
            get(|| async { asset(JS, INIT_JS.as_bytes(), "no-cache") }),
        )
}

async fn index() -> Response {
    let mut res = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

const JS: &str = "text/javascript; charset=utf-8";

fn asset(content_type: &'static str, body: &'static [u8], cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
