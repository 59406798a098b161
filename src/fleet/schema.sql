-- ccs-endpoint fleet schema, version 1 (applied by `ccs-endpoint db migrate`).
--
-- One row per key holds its state; every change to a row, whoever makes it (the CLI, the
-- admin API, an import, a DBA at a psql prompt), goes through the trigger below, which in the
-- same transaction takes the next revision (one order for every change), appends a record to
-- the hash-chained audit table and notifies the replicas. The trigger runs as the schema's
-- owner, so the roles that change states need no right on the audit or revision tables.

CREATE TABLE ccs_revision (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision bigint NOT NULL
);
INSERT INTO ccs_revision (only_row, revision) VALUES (true, 0);

CREATE TABLE ccs_key_state (
    instance text NOT NULL CHECK (instance ~ '^[A-Za-z0-9_-]{1,63}$'),
    key_id bigint NOT NULL CHECK (key_id >= 0),
    kcv text NOT NULL CHECK (kcv ~ '^[0-9A-F]{6}$'),
    disabled boolean NOT NULL DEFAULT false,
    not_after timestamptz,
    revision bigint NOT NULL DEFAULT 0,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    PRIMARY KEY (instance, key_id)
);

CREATE TABLE ccs_audit (
    seq bigint PRIMARY KEY,
    time text NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    instance text NOT NULL,
    key_id bigint NOT NULL,
    before text NOT NULL,
    after text NOT NULL,
    reason text NOT NULL,
    prev text NOT NULL,
    hash text NOT NULL
);

CREATE TABLE ccs_replica (
    name text PRIMARY KEY,
    version text NOT NULL,
    started_at timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    applied_revision bigint NOT NULL,
    stopped_at timestamptz
);

CREATE TABLE ccs_poll (
    instance text NOT NULL,
    key_id bigint NOT NULL,
    replica text NOT NULL,
    at timestamptz NOT NULL,
    status integer NOT NULL,
    reason text NOT NULL,
    valid_until timestamptz,
    PRIMARY KEY (instance, key_id)
);

-- A moment as the audit chain writes it: UTC, microseconds, 'Z'.
CREATE FUNCTION ccs_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- A key's state as the audit chain writes it: canonical JSON (sorted keys, no spaces).
CREATE FUNCTION ccs_state_json(disabled boolean, kcv text, not_after timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT '{"disabled":' || disabled::text
        || ',"kcv":' || to_json(kcv)::text
        || ',"not_after":' || coalesce(to_json(ccs_time(not_after))::text, 'null')
        || '}'
$$;

CREATE FUNCTION ccs_state_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
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
    at text := ccs_time(clock_timestamp());
    prev_hash text;
    body text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.instance <> OLD.instance OR NEW.key_id <> OLD.key_id THEN
            RAISE EXCEPTION 'a key''s instance and key_id cannot change: remove the row and add another';
        END IF;
        IF NEW.kcv = OLD.kcv AND NEW.disabled = OLD.disabled
                AND NEW.not_after IS NOT DISTINCT FROM OLD.not_after THEN
            -- No change of state: nothing to apply, nothing to audit, the row stays as it was.
            RETURN OLD;
        END IF;
    END IF;
    UPDATE ccs_revision SET revision = revision + 1 RETURNING revision INTO rev;
    IF TG_OP = 'DELETE' THEN
        inst := OLD.instance;
        kid := OLD.key_id;
        why := coalesce(current_setting('ccs.reason', true), '');
    ELSE
        inst := NEW.instance;
        kid := NEW.key_id;
        why := coalesce(nullif(current_setting('ccs.reason', true), ''), NEW.reason, '');
        NEW.revision := rev;
        NEW.changed_at := clock_timestamp();
        NEW.changed_by := who;
        NEW.reason := why;
        state_after := ccs_state_json(NEW.disabled, NEW.kcv, NEW.not_after);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        state_before := ccs_state_json(OLD.disabled, OLD.kcv, OLD.not_after);
    END IF;
    IF what IS NULL THEN
        what := CASE
            WHEN TG_OP = 'INSERT' THEN 'add'
            WHEN TG_OP = 'DELETE' THEN 'remove'
            WHEN NEW.kcv <> OLD.kcv THEN 'replace'
            WHEN NEW.disabled AND NOT OLD.disabled THEN 'disable'
            WHEN OLD.disabled AND NOT NEW.disabled THEN 'enable'
            WHEN NEW.not_after IS NULL THEN 'restore'
            WHEN NEW.not_after <= clock_timestamp() THEN 'shutdown'
            ELSE 'renew'
        END;
    END IF;
    SELECT hash INTO prev_hash FROM ccs_audit ORDER BY seq DESC LIMIT 1;
    prev_hash := coalesce(prev_hash, repeat('0', 64));
    body := '{"action":' || to_json(what)::text
        || ',"actor":' || to_json(who)::text
        || ',"after":' || state_after
        || ',"before":' || state_before
        || ',"instance":' || to_json(inst)::text
        || ',"key_id":' || kid::text
        || ',"reason":' || to_json(why)::text
        || ',"seq":' || rev::text
        || ',"time":' || to_json(at)::text
        || '}';
    INSERT INTO ccs_audit (seq, time, actor, action, instance, key_id, before, after, reason, prev, hash)
    VALUES (rev, at, who, what, inst, kid, state_before, state_after, why, prev_hash,
            encode(sha256(convert_to(prev_hash || body, 'UTF8')), 'hex'));
    PERFORM pg_notify('ccs_state', rev::text);
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ccs_state_changed BEFORE INSERT OR UPDATE OR DELETE ON ccs_key_state
    FOR EACH ROW EXECUTE FUNCTION ccs_state_changed();

-- Nobody rewrites the past: the audit table is appended by the trigger alone.
REVOKE ALL ON ccs_audit, ccs_revision FROM PUBLIC;
REVOKE ALL ON FUNCTION ccs_state_changed() FROM PUBLIC;
