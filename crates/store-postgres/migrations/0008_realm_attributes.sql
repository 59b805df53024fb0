-- Keycloak's realm attributes (RealmRepresentation.attributes): a JSON
-- object of strings, '{}' for the realms that existed before.
ALTER TABLE realms ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
