-- ccs-endpoint fleet schema, version 4: a change through the signed API carries its
-- signatures (contract §10), so that `audit verify --signers FILE` can check again who
-- approved it, with nothing but the chain and the signers' secrets.
--
-- 1. ccs_audit.signatures: the approvers' signed requests, a JSON list kept as the text it
--    was hashed as; the hash covers it, after `seq` (keys in order), and only where a record
--    has one, so the records written before stay as they were.
-- 2. ccs_approval.evidence: each pending approver's signed request, beside `approvers`.
-- 3. The trigger and ccs_audit_event take the list from the transaction's `ccs.signatures`
--    setting, as they take `ccs.actor` from `ccs.actor`: a claim, which the signatures
--    themselves prove or disprove.

ALTER TABLE @schema@.ccs_audit ADD COLUMN signatures text;
ALTER TABLE @schema@.ccs_approval ADD COLUMN evidence text[] NOT NULL DEFAULT '{}';

CREATE FUNCTION @schema@.ccs_append_audit(p_actor text, p_action text, p_instance text,
                                          p_key_id bigint, p_before text, p_after text,
                                          p_reason text, p_signatures text) RETURNS bigint
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
        || coalesce(',"signatures":' || to_json(p_signatures)::text, '')
        || ',"time":' || to_json(at)::text
        || '}';
    INSERT INTO @schema@.ccs_audit
        (seq, time, actor, action, instance, key_id, before, after, reason, role, signatures,
         prev, hash)
    VALUES (rev, at, p_actor, p_action, p_instance, p_key_id, p_before, p_after, p_reason, who,
            p_signatures, prev_hash,
            encode(sha256(convert_to(prev_hash || body, 'UTF8')), 'hex'));
    PERFORM pg_notify('ccs_state', rev::text);
    RETURN rev;
END
$$;
REVOKE ALL ON FUNCTION @schema@.ccs_append_audit(text, text, text, bigint, text, text, text, text)
    FROM PUBLIC;

-- The transaction's signatures, or none.
CREATE FUNCTION @schema@.ccs_signatures() RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT nullif(pg_catalog.current_setting('ccs.signatures', true), '') $$;

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
    rev := @schema@.ccs_append_audit(who, what, inst, kid, state_before, state_after, why,
                                     @schema@.ccs_signatures());
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
                                     p_reason, @schema@.ccs_signatures());
END
$$;

DROP FUNCTION @schema@.ccs_append_audit(text, text, text, bigint, text, text, text);
