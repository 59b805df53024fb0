//! Device authorization (RFC 8628): the endpoint a CLI or IDE asks for a
//! code pair, and the decisions a signed-in person makes on the verification
//! page. Polling is the `device_code` grant (`grants/device_code.rs`).

use super::BrowserSignIn;
use super::SignedIn;
use crate::params::Params;
use rand::Rng;
use serde::Serialize;
use tessera_core::scope::ScopeSet;
use tessera_core::secret::random_token;
use tessera_core::time::now_ms;
use tessera_core::{Client, DeviceCode, DeviceStatus, OAuthError, Realm, TokenHash};
use tessera_store::{DeviceDecision, StoreError};

/// The client attribute that enables the grant (Keycloak's name).
pub const DEVICE_GRANT_ATTRIBUTE: &str = "oauth2.device.authorization.grant.enabled";

/// User codes use consonants only (RFC 8628 §6.1): no vowels to spell words,
/// no characters that look alike.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// Whether a client may use the device grant.
pub fn device_grant_enabled(client: &Client) -> bool {
    client
        .attributes
        .get(DEVICE_GRANT_ATTRIBUTE)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Upper case, separators and spaces dropped: what people type becomes what
/// is stored. `None` if it cannot be a user code.
pub fn normalize_user_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// `BCDF-GHJK`: how a user code is shown.
pub fn format_user_code(code: &str) -> String {
    if code.len() == USER_CODE_LEN {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_string()
    }
}

fn new_user_code() -> String {
    let mut rng = rand::thread_rng();
    (0..USER_CODE_LEN)
        .map(|_| USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char)
        .collect()
}

/// A code found on the verification page, and the client that asks.
#[derive(Clone, Debug)]
pub struct PendingDevice {
    pub code: DeviceCode,
    pub client: Client,
}

/// Why a user code cannot be decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceLookup {
    /// Not a code we issued (or mistyped).
    Unknown,
    Expired,
    /// Approved or denied before.
    AlreadyDecided,
}

impl BrowserSignIn {
    /// `POST .../protocol/openid-connect/auth/device`.
    pub async fn device_authorization(
        &self,
        realm: &Realm,
        authorization: Option<&str>,
        params: &Params,
        address: Option<&str>,
    ) -> Result<DeviceAuthorization, OAuthError> {
        // Every live code is a target for user-code guesses: bound how fast
        // one address, or everyone together, can create them.
        self.throttle.device_request_from(address).await?;
        let client = self
            .client_auth
            .calling_client(realm, authorization, params)
            .await?;
        self.throttle.device_request_in(&realm.id).await?;
        if !device_grant_enabled(&client) {
            return Err(OAuthError::unauthorized_client(
                "client is not allowed to use the device authorization grant",
            ));
        }
        let scope = ScopeSet::parse_requested(params.get("scope"))?;
        let cfg = &self.config.browser;
        let device_code = random_token(32);
        let now = now_ms();
        let mut record = DeviceCode {
            hash: TokenHash::of(&device_code),
            user_code: new_user_code(),
            realm_id: realm.id.clone(),
            client_id: client.id.clone(),
            scope: scope.to_param(),
            session_id: uuid::Uuid::new_v4().to_string(),
            status: DeviceStatus::Pending,
            user_id: None,
            sso_session_id: None,
            auth_time: None,
            interval_secs: cfg.device_poll_interval_secs,
            last_polled_at: None,
            created_at: now,
            expires_at: now + cfg.device_code_ttl_secs * 1000,
            spent_at: None,
        };
        // 20^8 codes: a clash with a live one is rare; try a few times.
        let mut attempts = 0;
        loop {
            match self.browser_db.insert_device_code(&record).await {
                Ok(()) => break,
                Err(StoreError::Conflict(_)) if attempts < 4 => {
                    attempts += 1;
                    record.user_code = new_user_code();
                }
                Err(e) => return Err(OAuthError::server_error(e)),
            }
        }
        let verification_uri = format!("{}/device", self.config.issuer(&realm.name));
        let user_code = format_user_code(&record.user_code);
        Ok(DeviceAuthorization {
            device_code,
            verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
            verification_uri,
            user_code,
            expires_in: cfg.device_code_ttl_secs,
            interval: cfg.device_poll_interval_secs,
        })
    }

    /// The pending code a person typed on the verification page.
    pub async fn pending_device(
        &self,
        realm: &Realm,
        user_code: &str,
        address: Option<&str>,
    ) -> Result<Result<PendingDevice, DeviceLookup>, OAuthError> {
        // Counted before the lookup, given back when the code is a real one:
        // guessing is bounded per address and per realm.
        let guess = self.throttle.user_code_guess(&realm.id, address).await?;
        let found = self.find_pending_device(realm, user_code).await?;
        if !matches!(found, Err(DeviceLookup::Unknown)) {
            guess.matched().await;
        }
        Ok(found)
    }

    async fn find_pending_device(
        &self,
        realm: &Realm,
        user_code: &str,
    ) -> Result<Result<PendingDevice, DeviceLookup>, OAuthError> {
        let Some(code) = normalize_user_code(user_code) else {
            return Ok(Err(DeviceLookup::Unknown));
        };
        let Some(record) = self
            .browser_db
            .device_code_by_user_code(&realm.id, &code)
            .await
            .map_err(OAuthError::server_error)?
        else {
            return Ok(Err(DeviceLookup::Unknown));
        };
        if record.expires_at <= now_ms() {
            return Ok(Err(DeviceLookup::Expired));
        }
        if record.status != DeviceStatus::Pending {
            return Ok(Err(DeviceLookup::AlreadyDecided));
        }
        let Some(client) = self
            .client_db
            .client(&realm.id, &record.client_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|c| c.enabled && device_grant_enabled(c))
        else {
            return Ok(Err(DeviceLookup::Unknown));
        };
        Ok(Ok(PendingDevice {
            code: record,
            client,
        }))
    }

    /// Approves or denies a device code as the signed-in user. `Err` says
    /// why it could not be decided (the first decision stands).
    pub async fn decide_device(
        &self,
        realm: &Realm,
        user_code: &str,
        approve: bool,
        signed_in: &SignedIn,
        address: Option<&str>,
    ) -> Result<Result<PendingDevice, DeviceLookup>, OAuthError> {
        let pending = match self.pending_device(realm, user_code, address).await? {
            Ok(p) => p,
            Err(why) => return Ok(Err(why)),
        };
        let decision = DeviceDecision {
            approve,
            user_id: signed_in.user.id.clone(),
            sso_session_id: signed_in.sso.id.clone(),
            auth_time: signed_in.sso.auth_time,
        };
        let decided = self
            .browser_db
            .decide_device_code(&realm.id, &pending.code.user_code, &decision, now_ms())
            .await
            .map_err(OAuthError::server_error)?;
        if !decided {
            return Ok(Err(DeviceLookup::AlreadyDecided));
        }
        tracing::info!(realm = %realm.name, client = %pending.client.client_id, approve, "device code decided");
        Ok(Ok(pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_short_and_unambiguous() {
        for _ in 0..100 {
            let c = new_user_code();
            assert_eq!(normalize_user_code(&format_user_code(&c)), Some(c.clone()));
            assert!(!c.contains(['A', 'E', 'I', 'O', 'U', '0', '1']));
        }
        assert_eq!(normalize_user_code("bcdf-ghjk"), Some("BCDFGHJK".into()));
        assert_eq!(normalize_user_code("BCDF GHJK"), Some("BCDFGHJK".into()));
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(normalize_user_code("ABCD-EFGH"), None);
        assert_eq!(normalize_user_code("<script>"), None);
    }
}
