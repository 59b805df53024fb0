//! Session-facing protocol operations: userinfo (OIDC Core §5.3),
//! introspection (RFC 7662), revocation (RFC 7009) and logout by refresh
//! token (Keycloak's back-channel form of the logout endpoint).

use crate::TokenEndpoint;
use serde_json::{json, Map, Value};
use tessera_core::time::now_ms;
use tessera_core::{Client, OAuthError, Realm, Session, TokenHash};

/// What a presented token turned out to be.
enum Presented {
    Access { azp: String, sid: Option<String> },
    Refresh { session: Box<Session> },
}

impl TokenEndpoint {
    /// Claims about the token's subject. `token` must be a live access token.
    pub async fn userinfo(&self, realm: &Realm, token: &str) -> Result<Value, OAuthError> {
        let (claims, session) = self.verifier.verify_live_access_token(realm, token).await?;
        let mut out = Map::new();
        out.insert("sub".into(), json!(claims.sub));
        if session.is_some() {
            let user = self
                .user_db
                .user(&realm.id, &claims.sub)
                .await
                .map_err(OAuthError::server_error)?
                .filter(|u| u.enabled)
                .ok_or_else(|| OAuthError::invalid_token("User not found or disabled"))?;
            let scope = tessera_core::scope::ScopeSet::from_stored(&claims.scope);
            out.insert("preferred_username".into(), json!(user.username));
            if scope.contains("email") {
                if let Some(e) = &user.email {
                    out.insert("email".into(), json!(e));
                }
                out.insert("email_verified".into(), json!(user.email_verified));
            }
            if scope.contains("profile") {
                if let Some(n) = user.full_name() {
                    out.insert("name".into(), json!(n));
                }
                if let Some(n) = &user.first_name {
                    out.insert("given_name".into(), json!(n));
                }
                if let Some(n) = &user.last_name {
                    out.insert("family_name".into(), json!(n));
                }
            }
        } else if let Some(u) = claims.preferred_username {
            out.insert("preferred_username".into(), json!(u));
        }
        Ok(Value::Object(out))
    }

    /// RFC 7662. Anything not currently valid is `{"active": false}`.
    pub async fn introspect(
        &self,
        realm: &Realm,
        client: &Client,
        token: &str,
    ) -> Result<Value, OAuthError> {
        if client.public_client {
            return Err(OAuthError::unauthorized_client(
                "public clients may not introspect tokens",
            ));
        }
        let inactive = json!({"active": false});
        if looks_like_jwt(token) {
            return Ok(
                match self.verifier.verify_live_access_token(realm, token).await {
                    Ok((claims, _)) => {
                        let mut v =
                            serde_json::to_value(&claims).map_err(OAuthError::server_error)?;
                        if let Some(obj) = v.as_object_mut() {
                            obj.insert("active".into(), json!(true));
                            obj.insert("client_id".into(), json!(claims.azp));
                            obj.insert("token_type".into(), json!("Bearer"));
                            if let Some(u) = &claims.preferred_username {
                                obj.insert("username".into(), json!(u));
                            }
                        }
                        v
                    }
                    Err(e) if e.code == tessera_core::OAuthErrorCode::ServerError => return Err(e),
                    Err(_) => inactive,
                },
            );
        }
        let Some(session) = self.live_refresh_session(realm, token).await? else {
            return Ok(inactive);
        };
        let Some(owner) = self
            .client_db
            .client(&realm.id, &session.client_id)
            .await
            .map_err(OAuthError::server_error)?
        else {
            return Ok(inactive);
        };
        let Some(user) = self
            .user_db
            .user(&realm.id, &session.user_id)
            .await
            .map_err(OAuthError::server_error)?
            .filter(|u| u.enabled)
        else {
            return Ok(inactive);
        };
        if !owner.enabled {
            return Ok(inactive);
        }
        Ok(json!({
            "active": true,
            "token_type": "Refresh",
            "client_id": owner.client_id,
            "sub": session.user_id,
            "username": user.username,
            "sid": session.id,
            "scope": session.scope,
            "iat": session.created_at / 1000,
            "exp": session.expires_at / 1000,
            "iss": self.config.issuer(&realm.name),
        }))
    }

    /// RFC 7009. Revoking a refresh token ends its session; revoking an access
    /// token (stateless, so it cannot be recalled alone) also ends the session
    /// it belongs to. Unknown or invalid tokens are not an error.
    pub async fn revoke(
        &self,
        realm: &Realm,
        client: &Client,
        token: &str,
    ) -> Result<(), OAuthError> {
        let Some(presented) = self.identify(realm, token).await? else {
            return Ok(());
        };
        let (owner_client_id, sid) = match &presented {
            Presented::Access { azp, sid } => (azp.clone(), sid.clone()),
            Presented::Refresh { session } => {
                let owner = self
                    .client_db
                    .client(&realm.id, &session.client_id)
                    .await
                    .map_err(OAuthError::server_error)?;
                (
                    owner.map(|c| c.client_id).unwrap_or_default(),
                    Some(session.id.clone()),
                )
            }
        };
        if owner_client_id != client.client_id {
            return Err(OAuthError::unauthorized_client(
                "token was issued to another client",
            ));
        }
        if let Some(sid) = sid {
            self.sessions.end_session(&sid).await?;
        }
        Ok(())
    }

    /// Logout with a refresh token: ends that session. Returns the session id.
    pub async fn logout_with_refresh_token(
        &self,
        realm: &Realm,
        client: &Client,
        refresh_token: &str,
    ) -> Result<String, OAuthError> {
        let session = self
            .live_refresh_session(realm, refresh_token)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("Invalid refresh token"))?;
        if session.client_id != client.id {
            return Err(OAuthError::invalid_grant("Invalid refresh token")
                .with_debug("another client's token"));
        }
        self.sessions.end_session(&session.id).await?;
        Ok(session.id)
    }

    async fn identify(&self, realm: &Realm, token: &str) -> Result<Option<Presented>, OAuthError> {
        if looks_like_jwt(token) {
            return Ok(
                match self.verifier.verify_access_token(realm, token).await {
                    Ok(c) => Some(Presented::Access {
                        azp: c.azp,
                        sid: c.sid,
                    }),
                    Err(e) if e.code == tessera_core::OAuthErrorCode::ServerError => return Err(e),
                    Err(_) => None,
                },
            );
        }
        Ok(self
            .live_refresh_session(realm, token)
            .await?
            .map(|session| Presented::Refresh {
                session: Box::new(session),
            }))
    }

    /// The active session of an unspent, unexpired refresh token of `realm`.
    async fn live_refresh_session(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<Option<Session>, OAuthError> {
        let now = now_ms();
        let Some(record) = self
            .refresh_db
            .refresh_token(&TokenHash::of(token))
            .await
            .map_err(OAuthError::server_error)?
        else {
            return Ok(None);
        };
        if record.rotated_at.is_some() || record.expires_at <= now {
            return Ok(None);
        }
        // Its fields are shown (`exp` moves with each rotation): ask the
        // database, which this path has just asked for the token anyway.
        self.verifier
            .current_session(realm, &record.session_id)
            .await
    }
}

fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}
