//! The tower layer: token extraction (header, or `?token=` where allowed and
//! then stripped from the URI so nothing downstream logs it), verification,
//! kind and role checks, the provisioning hook, and the 401/403 responses.
//! A layer given its [`ProtectedResource`] also requires the token's `aud` to
//! name that resource (RFC 8707) and points every 401 at the resource's
//! metadata (RFC 9728 §5.1).

use crate::resource::ProtectedResource;
use crate::verifier::{Verifier, VerifyError, MAX_TOKEN_BYTES};
use crate::{Subject, TokenKind};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Which token kinds a route accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    Users,
    Machines,
    /// Users' access tokens and machine tokens.
    Both,
    /// Consent-login access tokens only (the verifier must accept them).
    Consent,
}

impl Accept {
    fn check(self, kind: &TokenKind) -> Result<(), VerifyError> {
        let ok = match kind {
            TokenKind::User { .. } => matches!(self, Self::Users | Self::Both),
            TokenKind::Machine { .. } => matches!(self, Self::Machines | Self::Both),
            TokenKind::Consent { .. } => self == Self::Consent,
        };
        if ok {
            return Ok(());
        }
        Err(VerifyError::WrongKind(match kind {
            TokenKind::User { .. } => "user tokens are not accepted here",
            TokenKind::Machine { .. } => "machine tokens are not accepted here",
            TokenKind::Consent { .. } => "consent tokens are not accepted here",
        }))
    }
}

/// Finds or creates the local user for a verified subject (Che's
/// EnvironmentInitializationFilter), and may refuse it (e.g. session ended).
#[async_trait]
pub trait Provision: Send + Sync {
    async fn provision(&self, subject: &mut Subject) -> Result<(), VerifyError>;
}

/// What a protected route requires.
#[derive(Clone)]
pub struct Policy {
    /// Whether `?token=` is accepted (Che allows it where a header is impossible).
    pub query_token: bool,
    pub accept: Accept,
    /// A realm role or scope the subject must have (403 otherwise).
    pub required_role: Option<String>,
    /// A scope the token must carry (403 `insufficient_scope` otherwise,
    /// whose challenge names it so the client can ask for it: RFC 6750 §3.1).
    pub required_scope: Option<String>,
    pub provision: Option<Arc<dyn Provision>>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            query_token: false,
            accept: Accept::Users,
            required_role: None,
            required_scope: None,
            provision: None,
        }
    }
}

#[derive(Clone)]
pub struct VerifyLayer {
    verifier: Arc<Verifier>,
    policy: Arc<Policy>,
    resource: Option<Arc<ProtectedResource>>,
}

impl VerifyLayer {
    pub fn new(verifier: Arc<Verifier>, policy: Policy) -> Self {
        Self {
            verifier,
            policy: Arc::new(policy),
            resource: None,
        }
    }

    /// Protects `resource`: only tokens whose `aud` contains
    /// `resource.resource` pass, and 401 answers carry
    /// `resource_metadata="<its metadata URL>"`. Serve the metadata itself
    /// with [`ProtectedResource::router`].
    pub fn resource(mut self, resource: ProtectedResource) -> Self {
        self.resource = Some(Arc::new(resource));
        self
    }
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
            policy: self.policy.clone(),
            resource: self.resource.clone(),
        }
    }
}

#[derive(Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    policy: Arc<Policy>,
    resource: Option<Arc<ProtectedResource>>,
}

impl<S> tower::Service<Request<Body>> for VerifyService<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone is not ready; swap so the ready service handles this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let policy = self.policy.clone();
        let resource = self.resource.clone();
        Box::pin(async move {
            let resource = resource.as_deref();
            let subject = match authenticate(&mut req, &verifier, &policy, resource).await {
                Ok(s) => s,
                Err(e) => return Ok(error_response(&e, resource)),
            };
            req.extensions_mut().insert(subject);
            inner.call(req).await
        })
    }
}

async fn authenticate(
    req: &mut Request<Body>,
    verifier: &Verifier,
    policy: &Policy,
    resource: Option<&ProtectedResource>,
) -> Result<Subject, VerifyError> {
    // A protected resource's metadata offers the header only.
    let token = take_token(req, policy.query_token && resource.is_none())?;
    let mut subject = verifier.verify(&token).await?;
    policy.accept.check(&subject.kind)?;
    // RFC 8707: the token must be meant for this resource. (Machine tokens
    // are bound to a workspace instead, and carry no audience.)
    if resource.is_some_and(|r| !subject.is_machine() && !r.is_audience(&subject.audience)) {
        return Err(VerifyError::WrongAudience);
    }
    if let Some(role) = &policy.required_role {
        if !subject.has_role(role) {
            return Err(VerifyError::Forbidden(format!("requires {role}")));
        }
    }
    if let Some(scope) = &policy.required_scope {
        if !subject.scope.iter().any(|s| s == scope) {
            return Err(VerifyError::InsufficientScope(scope.clone()));
        }
    }
    if let Some(p) = &policy.provision {
        p.provision(&mut subject).await?;
    }
    Ok(subject)
}

/// The token from `Authorization: Bearer`, else (if allowed) from `?token=`.
/// A `token` query parameter is removed from the request (its URI and
/// axum's `OriginalUri`) whichever source is used, so handlers and their logs
/// never see it.
fn take_token(req: &mut Request<Body>, query_allowed: bool) -> Result<String, VerifyError> {
    let query_token = strip_query_token(req)?;
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        if value.len() > MAX_TOKEN_BYTES + 16 {
            return Err(VerifyError::Malformed);
        }
        let value = value.to_str().map_err(|_| VerifyError::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(VerifyError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(VerifyError::Malformed);
        }
        return Ok(token.trim().to_string());
    }
    match query_token {
        Some(_) if !query_allowed => Err(VerifyError::WrongKind(
            "a token in the query string is not accepted here",
        )),
        Some(token) => Ok(token),
        None => Err(VerifyError::Missing),
    }
}

/// Removes `token` from the query string, returning its value.
fn strip_query_token(req: &mut Request<Body>) -> Result<Option<String>, VerifyError> {
    let Some(query) = req.uri().query() else {
        return Ok(None);
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let Some(token) = pairs
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
    else {
        return Ok(None);
    };
    let rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "token").collect();
    let mut path_and_query = req.uri().path().to_string();
    if !rest.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(rest)
                .finish(),
        );
    }
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|_| VerifyError::Malformed)?);
    let uri = Uri::from_parts(parts).map_err(|_| VerifyError::Malformed)?;
    if let Some(original) = req.extensions_mut().get_mut::<axum::extract::OriginalUri>() {
        original.0 = uri.clone();
    }
    *req.uri_mut() = uri;
    Ok(Some(token))
}

pub(crate) fn unauthorized(description: &str) -> Response {
    respond(
        StatusCode::UNAUTHORIZED,
        Some(("invalid_token", description)),
        &[],
    )
}

/// A JSON error body and its RFC 6750 §3 challenge. `error` is `None` for
/// a request that carried no token (§3.1: no error code then); `extra` are
/// further auth-params (`scope`, `resource_metadata`).
fn respond(status: StatusCode, error: Option<(&str, &str)>, extra: &[(&str, &str)]) -> Response {
    // An auth-param's quoted-string, restricted to printable ASCII
    // without `"` and `\` (anything else becomes `?`), so the header is
    // always valid and never carries another parameter.
    let quoted = |v: &str| -> String {
        v.chars()
            .map(|c| match c {
                ' ' | '!' | '#'..='[' | ']'..='~' => c,
                _ => '?',
            })
            .collect()
    };
    let mut params: Vec<String> = Vec::new();
    let body = match error {
        Some((error, description)) => {
            params.push(format!("error=\"{error}\""));
            params.push(format!("error_description=\"{}\"", quoted(description)));
            serde_json::json!({"error": error, "error_description": description})
        }
        // The body stays what every 401 of this layer says.
        None => serde_json::json!({"error": "invalid_token", "error_description": "no token"}),
    };
    params.extend(extra.iter().map(|(k, v)| format!("{k}=\"{}\"", quoted(v))));
    let mut res = (status, axum::Json(body)).into_response();
    let challenge = if params.is_empty() {
        "Bearer".to_string()
    } else {
        format!("Bearer {}", params.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

fn error_response(e: &VerifyError, resource: Option<&ProtectedResource>) -> Response {
    let metadata = resource.map(ProtectedResource::metadata_url);
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(url) = &metadata {
        extra.push(("resource_metadata", url));
    }
    match e {
        VerifyError::Forbidden(why) => respond(
            StatusCode::FORBIDDEN,
            Some(("insufficient_scope", why)),
            &extra,
        ),
        VerifyError::InsufficientScope(scope) => {
            extra.insert(0, ("scope", scope));
            respond(
                StatusCode::FORBIDDEN,
                Some(("insufficient_scope", &e.to_string())),
                &extra,
            )
        }
        VerifyError::KeysUnavailable(detail) => {
            tracing::warn!(%detail, "token verification keys unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"error": "temporarily_unavailable"})),
            )
                .into_response()
        }
        VerifyError::Internal(detail) => {
            tracing::error!(%detail, "token verification failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({"error": "server_error"})),
            )
                .into_response()
        }
        // RFC 6750 §3.1: a request without a token learns only where to get
        // one (a resource's clients start exactly so).
        VerifyError::Missing if resource.is_some() => {
            respond(StatusCode::UNAUTHORIZED, None, &extra)
        }
        other => respond(
            StatusCode::UNAUTHORIZED,
            Some(("invalid_token", &other.to_string())),
            &extra,
        ),
    }
}
