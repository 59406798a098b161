-- Least-privilege roles for a ccs-endpoint fleet (contract §8). Run once, after
-- `ccs-endpoint db migrate`, as the role that owns the schema; running it again is harmless.
--
--   ccs_serving   what a replica needs: read the key states and the audit chain (to verify
--                 it), register itself, record polls. It cannot change a key's state, and
--                 writes only its own rows (row-level security, schema version 3): give
--                 each replica its own login.
--   ccs_operator  change key states (the schema's trigger takes the revision and appends the
--                 audit record for it) and read everything. It cannot write the audit table
--                 or the revision counter, so nobody but the schema's owner can rewrite the past.
--
-- Then give each login one of them, e.g.
--   CREATE ROLE replica_a LOGIN PASSWORD '…' IN ROLE ccs_serving;
--   CREATE ROLE oncall    LOGIN PASSWORD '…' IN ROLE ccs_operator;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ccs_serving') THEN
        CREATE ROLE ccs_serving NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ccs_operator') THEN
        CREATE ROLE ccs_operator NOLOGIN;
    END IF;
END
$$;

-- No temporary objects in the state database (schema version 3 fixes the owner functions'
-- lookups; this takes the means away as well). TEMPORARY is PUBLIC's by default, so it is
-- taken from PUBLIC: keep the state database for ccs-endpoint alone. Needs the database's
-- owner (or a superuser).
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC, ccs_serving, ccs_operator',
                   current_database());
END
$$;

GRANT SELECT ON ccs_key_state, ccs_revision, ccs_schema_version TO ccs_serving;
-- Each replica verifies the audit chain (ccs_audit_chain_ok); reading it changes nothing.
GRANT SELECT ON ccs_audit TO ccs_serving;
GRANT SELECT, INSERT, UPDATE ON ccs_replica, ccs_poll TO ccs_serving;

GRANT SELECT, INSERT, UPDATE, DELETE ON ccs_key_state TO ccs_operator;
GRANT SELECT ON ccs_revision, ccs_replica, ccs_poll, ccs_audit, ccs_schema_version TO ccs_operator;

-- The signed admin API (schema version 2): a replica that serves `[api]` changes key states
-- and keeps the shared approvals and nonces, so its login needs ccs_operator as well, e.g.
--   CREATE ROLE api_replica LOGIN PASSWORD '…' IN ROLE ccs_serving, ccs_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON ccs_approval, ccs_nonce TO ccs_operator;
-- The fleet's quorum (schema version 3), written by `db migrate` only.
GRANT SELECT ON ccs_quorum TO ccs_serving, ccs_operator;
-- An escrow export is recorded in the audit chain through this function (it changes no state).
GRANT EXECUTE ON FUNCTION ccs_audit_event(text, text, text, bigint, text) TO ccs_operator;
