//! The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2): validating
//! the request, and answering it with a code or an error at the client's
//! redirect URI. Until the redirect URI is known to be the client's, nothing
//! is sent there: those errors are shown on a page instead.

use super::BrowserSignIn;
use super::SignedIn;
use crate::params::Params;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::random_token;
use tessera_core::time::now_ms;
use tessera_core::{AuthCode, Client, OAuthError, OAuthErrorCode, Realm, TokenHash};

/// How the response reaches the client.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query (the default for `code`).
    Query,
    /// An auto-submitted HTML form POSTed to the redirect URI.
    FormPost,
    /// Parameters in the redirect URI's fragment (keycloak-js's default).
    Fragment,
}

/// A validated authorization request: what the login page carries (sealed)
/// until the user has signed in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub code_challenge: Option<String>,
    /// `prompt=login`: ask for the password even if signed in.
    pub force_login: bool,
    /// `prompt=none`: never show a page.
    pub no_prompt: bool,
    pub max_age: Option<i64>,
    /// `login_hint`, to prefill the username.
    pub login_hint: Option<String>,
}

/// A response for the client, at its redirect URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(String, String)>,
}

impl Redirect {
    /// The URL to send the browser to (query and fragment modes).
    pub fn location(&self) -> String {
        let Ok(mut u) = url::Url::parse(&self.redirect_uri) else {
            return self.redirect_uri.clone();
        };
        if self.mode == ResponseMode::Fragment {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.params {
                f.append_pair(k, v);
            }
            u.set_fragment(Some(&f.finish()));
        } else {
            let mut q = u.query_pairs_mut();
            for (k, v) in &self.params {
                q.append_pair(k, v);
            }
        }
        u.to_string()
    }

    /// The redirect URI as a CSP source (for the page's `form-action`).
    pub fn origin(&self) -> Option<String> {
        origin_of(&self.redirect_uri)
    }
}

/// A CSP source for a URL: `scheme://host[:port]`, or `scheme:` for the
/// private-use schemes native apps register (`vscode:`, `com.example.app:`).
pub fn origin_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    match u.origin() {
        url::Origin::Tuple(..) => Some(u.origin().ascii_serialization()),
        url::Origin::Opaque(_) if !matches!(u.scheme(), "javascript" | "data" | "blob") => {
            Some(format!("{}:", u.scheme()))
        }
        url::Origin::Opaque(_) => None,
    }
}

/// Why an authorization request failed.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: show this message
    /// on a page, never redirect.
    Page(String),
    /// Tell the client, at its (verified) redirect URI.
    Redirect(Redirect),
    /// Something broke on our side.
    Server(OAuthError),
}

impl From<OAuthError> for AuthorizeError {
    fn from(e: OAuthError) -> Self {
        Self::Server(e)
    }
}

/// Upper bounds on echoed values: they travel in URLs and pages.
const MAX_STATE: usize = 2048;
const MAX_NONCE: usize = 512;

/// Does `requested` name one of the client's registered redirect URIs?
/// Registered URIs are compared as exact strings (a `*` is just a
/// character), except that a loopback IP URI registered without a port
/// accepts any port (RFC 8252 §7.3, for native apps and CLIs).
pub fn redirect_uri_registered(registered: &[String], requested: &str) -> bool {
    if requested.contains('#') {
        return false;
    }
    registered
        .iter()
        .any(|r| r == requested || (loopback_without_port(r) && same_but_port(r, requested)))
}

fn loopback_without_port(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && u.port().is_none()
            && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]"))
    })
}

/// `requested` is `registered` with a port added, both written in canonical
/// form (so `..` segments or case changes never sneak through).
fn same_but_port(registered: &str, requested: &str) -> bool {
    let (Ok(r), Ok(q)) = (url::Url::parse(registered), url::Url::parse(requested)) else {
        return false;
    };
    if q.as_str() != requested || q.port().is_none() {
        return false;
    }
    let mut without = q.clone();
    without.set_port(None).is_ok() && without.as_str() == r.as_str()
}

/// The S256 transform (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl BrowserSignIn {
    /// Validates an authorization request from its query (or form) parameters.
    pub async fn authorize_request(
        &self,
        realm: &Realm,
        params: &Params,
    ) -> Result<(Client, AuthorizeRequest), AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_string());
        let client_id = params
            .get("client_id")
            .ok_or_else(|| page("The request names no client (client_id is missing)."))?;
        let client = self.browser_client(realm, client_id).await?;
        let redirect_uri = match params.get("redirect_uri") {
            Some(uri) => uri.to_string(),
            None => return Err(page("The request has no redirect_uri.")),
        };
        if !redirect_uri_registered(&client.redirect_uris, &redirect_uri) {
            return Err(page(
                "The redirect URI is not one this application registered.",
            ));
        }
        let state = params.get("state").map(str::to_string);
        let response_mode = match params.get("response_mode") {
            Some("form_post") => ResponseMode::FormPost,
            Some("fragment") => ResponseMode::Fragment,
            _ => ResponseMode::Query,
        };
        let fail = |e: OAuthError| {
            AuthorizeError::Redirect(self.error_redirect(
                realm,
                &redirect_uri,
                response_mode,
                state.as_deref().filter(|s| s.len() <= MAX_STATE),
                &e,
            ))
        };
        if let Some(mode) = params.get("response_mode") {
            if !matches!(mode, "query" | "form_post" | "fragment") {
                return Err(fail(OAuthError::invalid_request(format!(
                    "unsupported response_mode: {mode} (use query, fragment or form_post)"
                ))));
            }
        }
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
            return Err(fail(OAuthError::invalid_request("state is too long")));
        }
        match params.get("response_type") {
            Some("code") => {}
            Some(other) => {
                return Err(fail(OAuthError::new(
                    OAuthErrorCode::UnsupportedResponseType,
                    format!("unsupported response_type: {other} (only code)"),
                )))
            }
            None => {
                return Err(fail(OAuthError::invalid_request(
                    "missing parameter: response_type",
                )))
            }
        }
        if !client.standard_flow_enabled {
            return Err(fail(OAuthError::unauthorized_client(
                "client is not allowed to use the authorization code flow",
            )));
        }
        if params.get("request").is_some() || params.get("request_uri").is_some() {
            return Err(fail(OAuthError::invalid_request(
                "request objects are not supported",
            )));
        }
        let scope = ScopeSet::parse_requested(params.get("scope")).map_err(fail)?;
        let nonce = params.get("nonce").map(str::to_string);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
            return Err(fail(OAuthError::invalid_request("nonce is too long")));
        }
        let code_challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
            (None, None) if client.public_client => {
                return Err(fail(OAuthError::invalid_request(
                    "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
                )))
            }
            // Keycloak's client attribute: this client requires PKCE too.
            (None, None) if pkce_required(&client) => {
                return Err(fail(OAuthError::invalid_request(
                    "PKCE is required for this client: send code_challenge with code_challenge_method=S256",
                )))
            }
            (None, None) => None,
            (Some(c), Some("S256")) => {
                if c.len() != 43 || URL_SAFE_NO_PAD.decode(c).map(|b| b.len()) != Ok(32) {
                    return Err(fail(OAuthError::invalid_request(
                        "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
                    )));
                }
                Some(c.to_string())
            }
            (Some(_), None) | (Some(_), Some("plain")) | (None, Some("plain")) => {
                return Err(fail(OAuthError::invalid_request(
                    "PKCE method plain is not allowed: use code_challenge_method=S256",
                )))
            }
            (None, Some(_)) => {
                return Err(fail(OAuthError::invalid_request("missing parameter: code_challenge")))
            }
            (Some(_), Some(m)) => {
                return Err(fail(OAuthError::invalid_request(format!(
                    "unsupported code_challenge_method: {m} (use S256)"
                ))))
            }
        };
        let prompts: Vec<&str> = params
            .get("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .collect();
        let no_prompt = prompts.contains(&"none");
        if no_prompt && prompts.len() > 1 {
            return Err(fail(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            )));
        }
        let max_age = match params.get("max_age") {
            Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                fail(OAuthError::invalid_request(
                    "max_age must be a number of seconds",
                ))
            })?),
            None => None,
        };
        Ok((
            client.clone(),
            AuthorizeRequest {
                client_id: client.client_id.clone(),
                redirect_uri,
                response_mode,
                state,
                nonce,
                scope: scope.to_param(),
                code_challenge,
                force_login: prompts.contains(&"login"),
                no_prompt,
                max_age,
                login_hint: params
                    .get("login_hint")
                    .map(|h| h.chars().take(255).collect()),
            },
        ))
    }

    /// Checks a request carried through the login page again: the client
    /// may have been changed or disabled meanwhile.
    pub async fn recheck_authorize(
        &self,
        realm: &Realm,
        req: &AuthorizeRequest,
    ) -> Result<Client, AuthorizeError> {
        let client = self.browser_client(realm, &req.client_id).await?;
        if !redirect_uri_registered(&client.redirect_uris, &req.redirect_uri) {
            return Err(AuthorizeError::Page(
                "The redirect URI is not one this application registered.".into(),
            ));
        }
        if !client.standard_flow_enabled {
            return Err(AuthorizeError::Redirect(self.error_redirect(
                realm,
                &req.redirect_uri,
                req.response_mode,
                req.state.as_deref(),
                &OAuthError::unauthorized_client(
                    "client is not allowed to use the authorization code flow",
                ),
            )));
        }
        Ok(client)
    }

    async fn browser_client(
        &self,
        realm: &Realm,
        client_id: &str,
    ) -> Result<Client, AuthorizeError> {
        self.client_db
            .client_by_client_id(&realm.id, client_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|c| c.enabled)
            .ok_or_else(|| {
                AuthorizeError::Page(
                    "The application asking you to sign in is not known here.".into(),
                )
            })
    }

    /// Whether the signed-in browser may answer without showing a page.
    pub fn sso_satisfies(&self, req: &AuthorizeRequest, signed_in: &SignedIn) -> bool {
        if req.force_login {
            return false;
        }
        match req.max_age {
            Some(max) => now_ms() - signed_in.sso.auth_time <= max.saturating_mul(1000),
            None => true,
        }
    }

    /// Issues a code for the signed-in user and the response carrying it.
    pub async fn issue_code(
        &self,
        realm: &Realm,
        client: &Client,
        req: &AuthorizeRequest,
        signed_in: &SignedIn,
    ) -> Result<Redirect, OAuthError> {
        let code = random_token(32);
        let now = now_ms();
        let record = AuthCode {
            hash: TokenHash::of(&code),
            realm_id: realm.id.clone(),
            client_id: client.id.clone(),
            user_id: signed_in.user.id.clone(),
            sso_session_id: signed_in.sso.id.clone(),
            session_id: uuid::Uuid::new_v4().to_string(),
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            auth_time: signed_in.sso.auth_time,
            created_at: now,
            expires_at: now + self.config.browser.code_ttl_secs * 1000,
            spent_at: None,
        };
        self.browser_db
            .insert_auth_code(&record)
            .await
            .map_err(OAuthError::server_error)?;
        let mut params = vec![("code".to_string(), code)];
        if let Some(s) = &req.state {
            params.push(("state".into(), s.clone()));
        }
        // The session the code will create: the same `session_state` the
        // token response and the ID token's `sid` carry.
        params.push(("session_state".into(), record.session_id.clone()));
        params.push(("iss".into(), self.config.issuer(&realm.name)));
        Ok(Redirect {
            redirect_uri: req.redirect_uri.clone(),
            mode: req.response_mode,
            params,
        })
    }

    /// An error response at the client's redirect URI (RFC 6749 §4.1.2.1,
    /// with the RFC 9207 `iss`).
    pub fn error_redirect(
        &self,
        realm: &Realm,
        redirect_uri: &str,
        mode: ResponseMode,
        state: Option<&str>,
        error: &OAuthError,
    ) -> Redirect {
        let mut params = vec![
            ("error".to_string(), error.code.as_str().to_string()),
            ("error_description".to_string(), error.description.clone()),
        ];
        if let Some(s) = state {
            params.push(("state".into(), s.to_string()));
        }
        params.push(("iss".into(), self.config.issuer(&realm.name)));
        Redirect {
            redirect_uri: redirect_uri.to_string(),
            mode,
            params,
        }
    }
}

/// Keycloak's `pkce.code.challenge.method` client attribute: `S256` makes
/// PKCE mandatory for the client (only S256 is ever accepted here; `plain`
/// in the attribute is treated as S256 rather than as a weaker method).
fn pkce_required(client: &Client) -> bool {
    client
        .attributes
        .get("pkce.code.challenge.method")
        .is_some_and(|m| !m.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly() {
        let reg = vec![
            "https://app.example/cb".to_string(),
            "http://localhost:3000/cb".to_string(),
            "http://127.0.0.1/callback".to_string(),
            "https://wild.example/*".to_string(),
        ];
        assert!(redirect_uri_registered(&reg, "https://app.example/cb"));
        for bad in [
            "https://app.example/cb/extra",
            "https://app.example/c",
            "https://app.example/cb?x=1",
            "https://app.example/cb#frag",
            "https://app.example:444/cb",
            "https://app.example.evil/cb",
            "http://app.example/cb",
            "http://localhost:3001/cb",
            "http://localhost/cb",
            "https://wild.example/anything",
            "http://127.0.0.1:8080/callback/x",
            "http://127.0.0.1:8080/other",
            "http://127.0.0.1/callback#x",
        ] {
            assert!(!redirect_uri_registered(&reg, bad), "{bad}");
        }
        assert!(redirect_uri_registered(&reg, "https://wild.example/*"));
        // RFC 8252 §7.3: loopback IP registered without a port takes any port.
        assert!(redirect_uri_registered(
            &reg,
            "http://127.0.0.1:53127/callback"
        ));
        assert!(redirect_uri_registered(&reg, "http://127.0.0.1/callback"));
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a b".repeat(20)));
    }
}
