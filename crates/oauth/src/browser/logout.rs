//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): checking
//! `id_token_hint`, `post_logout_redirect_uri` and `state`, then ending the
//! browser's SSO session and every session it started.

use super::BrowserSignIn;
use super::SignedIn;
use crate::params::Params;
use tessera_core::claims::{IdClaims, TYP_ID};
use tessera_core::{Client, OAuthError, Realm};
use tessera_keys::{decode_unverified_header, verify_compact};

/// Keycloak's client attribute for post-logout redirect URIs: `##`-separated,
/// where `+` stands for the client's redirect URIs. Absent means `+`.
pub const POST_LOGOUT_ATTRIBUTE: &str = "post.logout.redirect.uris";

/// A checked logout request.
#[derive(Clone, Debug, Default)]
pub struct LogoutRequest {
    /// The session named by the ID token (its `sid`), and whose it is.
    pub hint_sid: Option<String>,
    pub hint_user: Option<String>,
    /// Where to send the browser afterwards, `state` included.
    pub redirect: Option<String>,
    /// The client that asked, for the confirmation page.
    pub client_name: Option<String>,
}

impl LogoutRequest {
    /// With a valid ID token the RP proved the request; without one the user
    /// confirms first (so a link on another site cannot sign anyone out).
    pub fn needs_confirmation(&self) -> bool {
        self.hint_sid.is_none() && self.hint_user.is_none()
    }
}

/// The post-logout redirect URIs a client registered.
pub fn post_logout_uris(client: &Client) -> Vec<String> {
    let raw = client
        .attributes
        .get(POST_LOGOUT_ATTRIBUTE)
        .map(String::as_str)
        .unwrap_or("+");
    let mut out = Vec::new();
    for uri in raw.split("##").map(str::trim).filter(|u| !u.is_empty()) {
        if uri == "+" {
            out.extend(client.redirect_uris.iter().cloned());
        } else {
            out.push(uri.to_string());
        }
    }
    out
}

impl BrowserSignIn {
    /// Checks the parameters. `Err` is a message for an error page: nothing
    /// is ended and nobody is redirected.
    pub async fn check_logout(
        &self,
        realm: &Realm,
        params: &Params,
    ) -> Result<LogoutRequest, String> {
        let mut req = LogoutRequest::default();
        let mut client_id = params.get("client_id").map(str::to_string);
        // A hint we cannot verify (forged, or signed by a key rotated out
        // since) proves nothing: the request is treated as one without it,
        // so the user is asked to confirm.
        let hint = match params.get("id_token_hint") {
            Some(h) => self.verify_id_token_hint(realm, h).await.ok(),
            None => None,
        };
        if let Some(claims) = hint {
            if client_id.as_ref().is_some_and(|c| *c != claims.aud) {
                return Err("The sign-out request names two different applications.".into());
            }
            client_id = Some(claims.aud.clone());
            req.hint_sid = claims.sid;
            req.hint_user = Some(claims.sub);
        }
        let client = match &client_id {
            Some(id) => Some(
                self.client_db
                    .client_by_client_id(&realm.id, id)
                    .await
                    .map_err(|_| "The server could not check the request.".to_string())?
                    .ok_or_else(|| {
                        "The application asking to sign you out is not known here.".to_string()
                    })?,
            ),
            None => None,
        };
        req.client_name = client
            .as_ref()
            .map(|c| c.name.clone().unwrap_or_else(|| c.client_id.clone()));
        if let Some(uri) = params.get("post_logout_redirect_uri") {
            let Some(client) = &client else {
                return Err("post_logout_redirect_uri needs id_token_hint or client_id.".into());
            };
            if uri.contains('#') || !post_logout_uris(client).iter().any(|u| u == uri) {
                return Err("The address to return to after signing out is not one this application registered.".into());
            }
            let mut target = url::Url::parse(uri).map_err(|_| {
                "The address to return to after signing out is not valid.".to_string()
            })?;
            if let Some(state) = params.get("state") {
                target.query_pairs_mut().append_pair("state", state);
            }
            req.redirect = Some(target.to_string());
        }
        Ok(req)
    }

    /// An ID token this realm issued. Expiry is not checked: the hint only
    /// says which session to end (the specification allows expired ones).
    async fn verify_id_token_hint(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<IdClaims, OAuthError> {
        let invalid = || OAuthError::invalid_request("invalid id_token_hint");
        let header = decode_unverified_header(token).map_err(|_| invalid())?;
        let kid = header.kid.ok_or_else(invalid)?;
        let key = self.keys.verifier(realm, &kid).await?.ok_or_else(invalid)?;
        let value = verify_compact(token, &key).map_err(|_| invalid())?;
        let claims: IdClaims = serde_json::from_value(value).map_err(|_| invalid())?;
        if claims.typ != TYP_ID || claims.iss != self.config.issuer(&realm.name) {
            return Err(invalid());
        }
        Ok(claims)
    }

    /// Ends the hinted session, its browser sign-in and every session that
    /// sign-in started, and this browser's sign-in when it is the same
    /// user's or there was no hint. Returns whether this browser was signed
    /// out (only then may its cookie be cleared).
    pub async fn rp_logout(
        &self,
        req: &LogoutRequest,
        browser: Option<&SignedIn>,
    ) -> Result<bool, OAuthError> {
        if let Some(sid) = &req.hint_sid {
            let session = self
                .session_db
                .session(sid)
                .await
                .map_err(OAuthError::server_error)?;
            if let Some(session) = session {
                self.sessions.end_session(&session.id).await?;
                if let Some(sso) = &session.sso_session_id {
                    self.end_sso_session(sso).await?;
                }
            }
        }
        match browser {
            Some(b) if req.hint_user.as_ref().is_none_or(|u| *u == b.user.id) => {
                self.end_sso_session(&b.sso.id).await?;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }
}
