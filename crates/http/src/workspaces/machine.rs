//! Issuing machine tokens: one per user per workspace, created when the
//! workspace starts or when another permitted user first asks, revoked when
//! it stops. Only the token id is stored; the JWT is re-signed on demand and,
//! RS512 PKCS#1 v1.5 being deterministic, is the same string every time.

use serde::Serialize;
use tessera_core::time::now_ms;
use tessera_core::{MachineTokenRecord, OAuthError, Realm, User, Workspace};
use tessera_oauth::TokenService;
use tessera_store::StoreError;

/// Che's machine-token claims, exactly.
#[derive(Serialize)]
struct MachineClaims<'a> {
    wsid: &'a str,
    uid: &'a str,
    uname: &'a str,
    jti: &'a str,
}

/// The user's machine token for a running workspace, created if needed.
pub async fn machine_token(
    tokens: &TokenService,
    realm: &Realm,
    ws: &Workspace,
    user: &User,
) -> Result<String, OAuthError> {
    let store_err = OAuthError::server_error;
    let record = match tokens
        .store
        .live_machine_token(&ws.id, &user.id)
        .await
        .map_err(store_err)?
    {
        Some(r) => r,
        None => {
            let fresh = MachineTokenRecord {
                jti: uuid::Uuid::new_v4().to_string(),
                workspace_id: ws.id.clone(),
                user_id: user.id.clone(),
                created_at: now_ms(),
                revoked_at: None,
            };
            match tokens.store.insert_machine_token(&fresh).await {
                Ok(()) => fresh,
                // A concurrent request created it first: use that one.
                Err(StoreError::Conflict(_)) => tokens
                    .store
                    .live_machine_token(&ws.id, &user.id)
                    .await
                    .map_err(store_err)?
                    .ok_or_else(|| OAuthError::server_error("machine token vanished"))?,
                Err(e) => return Err(store_err(e)),
            }
        }
    };
    let keys = tokens.keys.machine_keys(realm).await?;
    let claims = MachineClaims {
        wsid: &ws.id,
        uid: &user.id,
        uname: &user.username,
        jti: &record.jti,
    };
    Ok(keys
        .signer
        .sign_jwt(&claims, Some(tessera_verify::MACHINE_TOKEN_KIND)))
}

/// Base64 X.509 SubjectPublicKeyInfo of the machine-token key, as agents
/// receive it in `CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY`.
pub async fn public_key(tokens: &TokenService, realm: &Realm) -> Result<String, OAuthError> {
    Ok(tokens
        .keys
        .machine_keys(realm)
        .await?
        .public_key_b64
        .clone())
}
