-- ccs-endpoint fleet schema, version 2: what the signed admin API (PRODUCT.md §9) shares
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
