-- ccs-endpoint fleet schema, version 2: what the signed admin API (contract §9) shares
-- between replicas behind one load balancer, so that a request reaching any of them counts
-- the same.
--
-- ccs_approval: changes waiting for more distinct signers (the quorum). A row is taken under
-- a transaction-level advisory lock, and the change it completes is made in the transaction
-- that deletes it.
-- ccs_nonce: the one-time nonces of signed requests while their `created` is in the window,
-- so a request replayed to another replica is refused as on the first.

CREATE TABLE ccs_approval (
    id text PRIMARY KEY,
    instance text NOT NULL,
    key_id bigint NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    required integer NOT NULL CHECK (required >= 1),
    approvers text[] NOT NULL,
    reasons text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX ccs_approval_change ON ccs_approval (instance, key_id, action, target);

CREATE TABLE ccs_nonce (
    signer text NOT NULL,
    nonce text NOT NULL,
    until bigint NOT NULL,
    PRIMARY KEY (signer, nonce)
);
CREATE INDEX ccs_nonce_until ON ccs_nonce (until);

-- An event about a key that changes no state (an escrow export), in the audit chain: the next
-- revision (the chain's seq), the key's state as both before and after, chained and hashed as
-- the trigger does. Runs as the schema's owner: callers need no right on the audit table.
CREATE FUNCTION ccs_audit_event(p_actor text, p_action text, p_instance text, p_key_id bigint,
                                p_reason text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
AS $$
DECLARE
    rev bigint;
    state text;
    at text := ccs_time(clock_timestamp());
    prev_hash text;
    body text;
BEGIN
    SELECT ccs_state_json(disabled, kcv, not_after) INTO state FROM ccs_key_state
        WHERE instance = p_instance AND key_id = p_key_id FOR UPDATE;
    IF state IS NULL THEN
        RAISE EXCEPTION 'no key % of instance %', p_key_id, p_instance;
    END IF;
    UPDATE ccs_revision SET revision = revision + 1 RETURNING revision INTO rev;
    SELECT hash INTO prev_hash FROM ccs_audit ORDER BY seq DESC LIMIT 1;
    prev_hash := coalesce(prev_hash, repeat('0', 64));
    body := '{"action":' || to_json(p_action)::text
        || ',"actor":' || to_json(p_actor)::text
        || ',"after":' || state
        || ',"before":' || state
        || ',"instance":' || to_json(p_instance)::text
        || ',"key_id":' || p_key_id::text
        || ',"reason":' || to_json(p_reason)::text
        || ',"seq":' || rev::text
        || ',"time":' || to_json(at)::text
        || '}';
    INSERT INTO ccs_audit (seq, time, actor, action, instance, key_id, before, after, reason, prev, hash)
    VALUES (rev, at, p_actor, p_action, p_instance, p_key_id, state, state, p_reason, prev_hash,
            encode(sha256(convert_to(prev_hash || body, 'UTF8')), 'hex'));
    -- The revision moved: replicas read it again (the state is the same).
    PERFORM pg_notify('ccs_state', rev::text);
    RETURN rev;
END
$$;
REVOKE ALL ON FUNCTION ccs_audit_event(text, text, text, bigint, text) FROM PUBLIC;
