-- Tessera schema, SQLite flavour. Timestamps are Unix milliseconds; JSON
-- columns hold arrays/maps as text; secrets appear only as SHA-256 hex.
CREATE TABLE realms (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT,
    enabled BOOLEAN NOT NULL,
    signing_alg TEXT NOT NULL,
    access_token_lifespan_secs INTEGER NOT NULL,
    session_max_lifespan_secs INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    name TEXT,
    enabled BOOLEAN NOT NULL,
    public_client BOOLEAN NOT NULL,
    secret_hash TEXT,
    secret_generation INTEGER NOT NULL,
    secret_generated BOOLEAN NOT NULL,
    redirect_uris TEXT NOT NULL,
    web_origins TEXT NOT NULL,
    standard_flow_enabled BOOLEAN NOT NULL,
    direct_access_grants_enabled BOOLEAN NOT NULL,
    service_accounts_enabled BOOLEAN NOT NULL,
    attributes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (realm_id, client_id)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    email TEXT,
    email_verified BOOLEAN NOT NULL,
    first_name TEXT,
    last_name TEXT,
    enabled BOOLEAN NOT NULL,
    password_hash TEXT,
    password_temporary BOOLEAN NOT NULL,
    roles TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (realm_id, username)
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    device_id TEXT,
    ip TEXT,
    user_agent TEXT,
    scope TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_by_user ON sessions (realm_id, user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_client ON sessions (client_id);

CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    alg TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL,
    public_key_der BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    visible_until INTEGER
);
CREATE INDEX signing_keys_by_realm ON signing_keys (realm_id, purpose);
