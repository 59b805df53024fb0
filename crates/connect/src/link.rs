//! One-time connect links: an IDE holding a bearer token (or Che's
//! `/api/oauth/authenticate`) gets a short-lived link that a browser may use
//! only when it is signed in as the same user, and only once.

use crate::{ConnectError, ConnectService, Start, Started, LINK_TTL_SECS};
use serde::Serialize;
use tessera_core::time::{now_ms, now_secs};
use tessera_core::{ProviderState, Realm};
use tessera_oauth::data::StoreError;

/// A one-time link that lets a browser signed in as `user_id` connect
/// `provider` (made for an IDE's bearer token, or by Che's API).
#[derive(Clone, Debug, serde::Deserialize, Serialize)]
pub struct ConnectLink {
    typ: String,
    pub jti: String,
    pub exp: i64,
    /// Internal realm id.
    pub realm: String,
    pub sub: String,
    pub prv: String,
    /// Che: where the browser goes afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
}

const LINK_TYP: &str = "connect-link";

impl ConnectService {
    /// A one-time link for `user_id` to connect `provider` in a browser:
    /// the page it opens checks that the browser is signed in as that user
    /// and asks them to confirm. `ret` is Che's `redirect_after_login`.
    /// Returns the URL and its lifetime in seconds.
    pub async fn connect_link(
        &self,
        realm: &Realm,
        user_id: &str,
        provider: &str,
        ret: Option<String>,
    ) -> Result<(String, i64), ConnectError> {
        self.provider(provider)?;
        if ret.as_deref().is_some_and(|r| !self.allowed_redirect(r)) {
            return Err(ConnectError::ForbiddenRedirect);
        }
        self.live_user(&realm.id, user_id).await?;
        let link = self.link_key.sign_jwt(&ConnectLink {
            typ: LINK_TYP.into(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            exp: now_secs() + LINK_TTL_SECS,
            realm: realm.id.clone(),
            sub: user_id.to_string(),
            prv: provider.to_string(),
            ret,
        });
        Ok((
            format!("{}?link={link}", self.confirm_page(&realm.name, provider)),
            LINK_TTL_SECS,
        ))
    }

    /// The page where a signed-in browser confirms connecting `provider`
    /// (`/realms/{realm}/account/connect/{provider}`, absolute).
    pub fn confirm_page(&self, realm_name: &str, provider: &str) -> String {
        let enc = |s: &str| -> String {
            url::form_urlencoded::byte_serialize(s.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        };
        format!(
            "{}/realms/{}/account/connect/{}",
            self.accounts.public_url(),
            enc(realm_name),
            enc(provider)
        )
    }

    /// Checks a connect link for `provider` in `realm` (signature, kind,
    /// expiry); it is spent by `start_from_link`.
    pub fn open_link(
        &self,
        raw: &str,
        realm: &Realm,
        provider: &str,
    ) -> Result<ConnectLink, ConnectError> {
        let link: ConnectLink = (raw.len() <= 4096)
            .then(|| self.link_key.verify_jwt(raw).ok())
            .flatten()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or(ConnectError::InvalidLink)?;
        if link.typ != LINK_TYP
            || link.exp <= now_secs()
            || link.realm != realm.id
            || link.prv != provider
        {
            return Err(ConnectError::InvalidLink);
        }
        Ok(link)
    }

    /// Spends the link (once, on any node) and starts the round trip for
    /// its user, who must be `signed_in_user`.
    pub async fn start_from_link(
        &self,
        realm: &Realm,
        link: ConnectLink,
        signed_in_user: &str,
    ) -> Result<Started, ConnectError> {
        if link.sub != signed_in_user {
            return Err(ConnectError::OtherAccount);
        }
        let spent = ProviderState {
            id: format!("link-{}", link.jti),
            provider: link.prv.clone(),
            secret: String::new(),
            created_at: now_ms(),
            expires_at: link.exp * 1000,
        };
        match self.accounts.insert_provider_state(&spent).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(ConnectError::InvalidLink),
            Err(e) => return Err(e.into()),
        }
        let start = match link.ret {
            Some(redirect_after_login) => Start::Che {
                realm: realm.clone(),
                user_id: link.sub,
                redirect_after_login,
            },
            None => Start::Connect {
                realm: realm.clone(),
                user_id: link.sub,
            },
        };
        self.start(&link.prv, start).await
    }
}
