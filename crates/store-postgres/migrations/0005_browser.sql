-- Browser sign-in: SSO sessions (named by a cookie, kept by the hash of its
-- secret), the app sessions each one started, authorization codes and device
-- codes (RFC 8628). Codes name the session their redemption creates, so a
-- replayed code can revoke what the first redemption produced.
CREATE TABLE sso_sessions (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    ip TEXT,
    user_agent TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sso_sessions_by_user ON sso_sessions (realm_id, user_id);
CREATE INDEX sso_sessions_by_expiry ON sso_sessions (expires_at);
CREATE INDEX sso_sessions_by_revocation ON sso_sessions (revoked_at);

ALTER TABLE sessions ADD COLUMN sso_session_id TEXT;
CREATE INDEX sessions_by_sso ON sessions (sso_session_id);

CREATE TABLE auth_codes (
    hash TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sso_session_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at BIGINT
);
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);

CREATE TABLE device_codes (
    hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    session_id TEXT NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    sso_session_id TEXT,
    auth_time BIGINT,
    interval_secs BIGINT NOT NULL,
    last_polled_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at BIGINT
);
CREATE INDEX device_codes_by_expiry ON device_codes (expires_at);
