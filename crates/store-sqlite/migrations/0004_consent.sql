-- Public-key consent login (Verida): sessions remember the application
-- context and the requesting app's origin, and answered challenges are kept
-- (by hash) until they expire, so each can be answered once.
ALTER TABLE sessions ADD COLUMN context_name TEXT;
ALTER TABLE sessions ADD COLUMN origin TEXT;
CREATE INDEX sessions_by_context ON sessions (realm_id, user_id, context_name, device_id);
CREATE INDEX sessions_by_revocation ON sessions (revoked_at);

CREATE TABLE consent_challenges (
    hash TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    did TEXT NOT NULL,
    context_name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX consent_challenges_by_expiry ON consent_challenges (expires_at);
