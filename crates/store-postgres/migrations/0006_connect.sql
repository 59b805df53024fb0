-- Upstream providers (CodeStream's "Connect to X" and "Sign up with X",
-- Che's OAuth API): outstanding authorization requests (single use, kept by
-- the state's jti), SSO sign-ups in progress (kept by the hash of the
-- client's sign-up token) and users' connections, whose provider tokens are
-- sealed (AES-256-GCM, key derived from the master key) before they get here.
CREATE TABLE provider_states (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX provider_states_by_expiry ON provider_states (expires_at);

CREATE TABLE signups (
    hash TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    error TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    completed_at BIGINT,
    spent_at BIGINT
);
CREATE INDEX signups_by_expiry ON signups (expires_at);

CREATE TABLE provider_connections (
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    secret TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, provider)
);
-- One Tessera user per provider identity.
CREATE UNIQUE INDEX provider_connections_by_identity ON provider_connections (realm_id, provider, subject);
