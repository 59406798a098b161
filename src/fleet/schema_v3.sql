-- ccs-endpoint fleet schema, version 3: only what the rules allow can move a key.
--
-- `db migrate` writes the schema that holds the tables in place of @schema@ (a quoted
-- identifier), so that no name below is looked up through a caller's search_path.
--
-- 1. The functions that run as the schema's owner (SECURITY DEFINER) name every object with
--    its schema and search only pg_catalog, this schema and, last, pg_temp: a session that
--    creates temporary tables named ccs_revision or ccs_audit can no longer catch the
--    revision and the audit record of its change (deploy/postgres/roles.sql also takes
--    TEMPORARY away from PUBLIC).
-- 2. Every audit record carries `role`, the login the database saw (session_user), beside
--    `actor`, which the client claims (ccs.actor, or the API's signers). The hash covers it.
-- 3. A replica writes only its own rows: its registration (ccs_replica) and its poll
--    outcomes (ccs_poll, now one row per key and replica), each stamped with the login that
--    wrote it and guarded by row-level security.
-- 4. The audit INSERT lives in one function, ccs_append_audit, for the trigger and for
--    ccs_audit_event alike.

ALTER TABLE @schema@.ccs_audit ADD COLUMN role text;

-- Whether a key's not_after is a lease (renew may move it) or a shutdown, scheduled or past
-- (only enable undoes it): contract §9. A state's canonical JSON shows it only when true,
-- so the records written before stay as they were.
ALTER TABLE @schema@.ccs_key_state ADD COLUMN lease boolean NOT NULL DEFAULT false;

CREATE FUNCTION @schema@.ccs_append_audit(p_actor text, p_action text, p_instance text,
                                          p_key_id bigint, p_before text, p_after text,
                                          p_reason text) RETURNS bigint
LANGUAGE plpgsql SET search_path = @schema@, pg_temp
AS $$
DECLARE
    rev bigint;
    at text := @schema@.ccs_time(clock_timestamp());
    who text := session_user;
    prev_hash text;
    body text;
BEGIN
    UPDATE @schema@.ccs_revision SET revision = revision + 1 RETURNING revision INTO rev;
    SELECT hash INTO prev_hash FROM @schema@.ccs_audit ORDER BY seq DESC LIMIT 1;
    prev_hash := coalesce(prev_hash, repeat('0', 64));
    body := '{"action":' || to_json(p_action)::text
        || ',"actor":' || to_json(p_actor)::text
        || ',"after":' || p_after
        || ',"before":' || p_before
        || ',"instance":' || to_json(p_instance)::text
        || ',"key_id":' || p_key_id::text
        || ',"reason":' || to_json(p_reason)::text
        || ',"role":' || to_json(who)::text
        || ',"seq":' || rev::text
        || ',"time":' || to_json(at)::text
        || '}';
    INSERT INTO @schema@.ccs_audit
        (seq, time, actor, action, instance, key_id, before, after, reason, role, prev, hash)
    VALUES (rev, at, p_actor, p_action, p_instance, p_key_id, p_before, p_after, p_reason, who,
            prev_hash, encode(sha256(convert_to(prev_hash || body, 'UTF8')), 'hex'));
    PERFORM pg_notify('ccs_state', rev::text);
    RETURN rev;
END
$$;
-- Called by the two functions below only (they run as the owner): nobody else appends.
REVOKE ALL ON FUNCTION @schema@.ccs_append_audit(text, text, text, bigint, text, text, text)
    FROM PUBLIC;

CREATE OR REPLACE FUNCTION @schema@.ccs_state_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = @schema@, pg_temp
AS $$
DECLARE
    rev bigint;
    who text := coalesce(nullif(current_setting('ccs.actor', true), ''), 'db:' || session_user);
    why text;
    what text := nullif(current_setting('ccs.action', true), '');
    state_before text := 'null';
    state_after text := 'null';
    inst text;
    kid bigint;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.instance <> OLD.instance OR NEW.key_id <> OLD.key_id THEN
            RAISE EXCEPTION 'a key''s instance and key_id cannot change: remove the row and add another';
        END IF;
        IF NEW.kcv = OLD.kcv AND NEW.disabled = OLD.disabled
                AND NEW.not_after IS NOT DISTINCT FROM OLD.not_after
                AND NEW.lease = OLD.lease THEN
            -- No change of state: nothing to apply, nothing to audit, the row stays as it was.
            RETURN OLD;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        inst := OLD.instance;
        kid := OLD.key_id;
        why := coalesce(current_setting('ccs.reason', true), '');
    ELSE
        inst := NEW.instance;
        kid := NEW.key_id;
        why := coalesce(nullif(current_setting('ccs.reason', true), ''), NEW.reason, '');
        state_after := @schema@.ccs_state_json(NEW.disabled, NEW.kcv, NEW.not_after, NEW.lease);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        state_before := @schema@.ccs_state_json(OLD.disabled, OLD.kcv, OLD.not_after, OLD.lease);
    END IF;
    IF what IS NULL THEN
        what := CASE
            WHEN TG_OP = 'INSERT' THEN 'add'
            WHEN TG_OP = 'DELETE' THEN 'remove'
            WHEN NEW.kcv <> OLD.kcv THEN 'replace'
            WHEN NEW.disabled AND NOT OLD.disabled THEN 'disable'
            WHEN OLD.disabled AND NOT NEW.disabled THEN 'enable'
            WHEN NEW.not_after IS NULL THEN 'restore'
            WHEN NEW.not_after <= clock_timestamp() OR NOT NEW.lease THEN 'shutdown'
            ELSE 'renew'
        END;
    END IF;
    rev := @schema@.ccs_append_audit(who, what, inst, kid, state_before, state_after, why);
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    NEW.revision := rev;
    NEW.changed_at := clock_timestamp();
    NEW.changed_by := who;
    NEW.reason := why;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION @schema@.ccs_audit_event(p_actor text, p_action text,
                                                    p_instance text, p_key_id bigint,
                                                    p_reason text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = @schema@, pg_temp
AS $$
DECLARE
    state text;
BEGIN
    SELECT @schema@.ccs_state_json(disabled, kcv, not_after, lease) INTO state
        FROM @schema@.ccs_key_state
        WHERE instance = p_instance AND key_id = p_key_id FOR UPDATE;
    IF state IS NULL THEN
        RAISE EXCEPTION 'no key % of instance %', p_key_id, p_instance;
    END IF;
    -- The revision moves (replicas read again; the state is the same).
    RETURN @schema@.ccs_append_audit(p_actor, p_action, p_instance, p_key_id, state, state,
                                     p_reason);
END
$$;

-- The two helpers the functions above call, with their lookups fixed as well.
CREATE OR REPLACE FUNCTION @schema@.ccs_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT pg_catalog.to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

CREATE FUNCTION @schema@.ccs_state_json(disabled boolean, kcv text, not_after timestamptz,
                                        lease boolean) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT '{"disabled":' || disabled::text
        || ',"kcv":' || pg_catalog.to_json(kcv)::text
        || CASE WHEN lease AND not_after IS NOT NULL THEN ',"lease":true' ELSE '' END
        || ',"not_after":'
        || coalesce(pg_catalog.to_json(@schema@.ccs_time(not_after))::text, 'null')
        || '}'
$$;

CREATE OR REPLACE FUNCTION @schema@.ccs_state_json(disabled boolean, kcv text,
                                                   not_after timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT @schema@.ccs_state_json(disabled, kcv, not_after, false) $$;

-- Each replica its own rows. A row is stamped with the login that wrote it; a login updates
-- only its own (a registration from before this version, with no login, is claimed once by
-- the first replica of that name to confirm). Table owners are not subject to these policies.
ALTER TABLE @schema@.ccs_replica ADD COLUMN login text DEFAULT session_user;
UPDATE @schema@.ccs_replica SET login = NULL;
ALTER TABLE @schema@.ccs_replica ENABLE ROW LEVEL SECURITY;
CREATE POLICY ccs_replica_read ON @schema@.ccs_replica FOR SELECT USING (true);
CREATE POLICY ccs_replica_register ON @schema@.ccs_replica FOR INSERT
    WITH CHECK (login = session_user);
CREATE POLICY ccs_replica_confirm ON @schema@.ccs_replica FOR UPDATE
    USING (login = session_user OR login IS NULL) WITH CHECK (login = session_user);

ALTER TABLE @schema@.ccs_poll ADD COLUMN login text DEFAULT session_user;
UPDATE @schema@.ccs_poll SET login = NULL;
ALTER TABLE @schema@.ccs_poll DROP CONSTRAINT ccs_poll_pkey;
ALTER TABLE @schema@.ccs_poll ADD PRIMARY KEY (instance, key_id, replica);
ALTER TABLE @schema@.ccs_poll ENABLE ROW LEVEL SECURITY;
CREATE POLICY ccs_poll_read ON @schema@.ccs_poll FOR SELECT USING (true);
-- A poll outcome names a replica the login registered.
CREATE POLICY ccs_poll_record ON @schema@.ccs_poll FOR INSERT
    WITH CHECK (login = session_user AND replica IN (
        SELECT name FROM @schema@.ccs_replica WHERE login = session_user));
CREATE POLICY ccs_poll_update ON @schema@.ccs_poll FOR UPDATE
    USING (login = session_user OR login IS NULL)
    WITH CHECK (login = session_user AND replica IN (
        SELECT name FROM @schema@.ccs_replica WHERE login = session_user));

-- A replica judges each row against the chain: the row's state and revision must be those of
-- the key's last audited change (contract §7: a row changed outside the chain is in doubt).
CREATE INDEX ccs_audit_key ON @schema@.ccs_audit (instance, key_id, seq);

-- An approval counts only for the version of its key it was cast on (the row's revision):
-- approvals pending from before this version carry none and are void.
ALTER TABLE @schema@.ccs_approval ADD COLUMN state text NOT NULL DEFAULT '';

-- One quorum for the fleet, the owner's: `db migrate` writes the [api.quorum] of the
-- configuration it runs with; each replica counts the larger of it and its own.
CREATE TABLE @schema@.ccs_quorum (
    action text PRIMARY KEY,
    required integer NOT NULL CHECK (required BETWEEN 1 AND 16)
);
INSERT INTO @schema@.ccs_quorum (action, required)
    VALUES ('disable', 1), ('shutdown', 1), ('renew', 1), ('enable', 2), ('export', 2);

-- A not_after that renew or an un-kill's `until` set before this version is a lease: marked
-- so, through the trigger (audited as this migration's change), so a dead-man lease keeps
-- being renewed after the upgrade. Any other not_after stays a shutdown.
SELECT set_config('ccs.actor', 'db migrate', true),
       set_config('ccs.reason', 'schema version 3: a not_after set by renew or enable is a lease', true);
UPDATE @schema@.ccs_key_state k SET lease = true
WHERE k.not_after IS NOT NULL AND (
    SELECT a.action FROM @schema@.ccs_audit a
    WHERE a.instance = k.instance AND a.key_id = k.key_id AND a.before <> a.after
    ORDER BY a.seq DESC LIMIT 1
) IN ('renew', 'enable');
SELECT set_config('ccs.actor', '', true), set_config('ccs.reason', '', true);
