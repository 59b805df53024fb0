-- Che workspaces, their members, and machine tokens (ids only: the JWT is
-- re-signed deterministically on demand, nothing secret is stored).
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms (id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (realm_id, namespace, name)
);
CREATE INDEX workspaces_by_owner ON workspaces (realm_id, owner_id);

CREATE TABLE workspace_members (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_by_user ON workspace_members (user_id);

CREATE TABLE machine_tokens (
    jti TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX machine_tokens_one_live ON machine_tokens (workspace_id, user_id) WHERE revoked_at IS NULL;
