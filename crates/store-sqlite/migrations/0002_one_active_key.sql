-- At most one active signing key per realm and purpose, so two nodes that
-- generate a realm's first key at the same moment cannot both succeed.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (realm_id, purpose) WHERE status = 'active';
