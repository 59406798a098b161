#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Only what the rules allow moves a key in a fleet (contract §7, §8, §10), tried as a
//! database login would against a real PostgreSQL: an operator's temporary tables cannot
//! catch a change's revision and audit record, a row changed outside the trigger is in doubt
//! on every replica (its withdrawal applies at once, its un-kill answers 503), and a replica's
//! login writes only that replica's rows.

mod support;

use std::path::Path;
use std::time::Duration;

use support::fleet::{poll, state, Bed};
use support::postgres::{within, Postgres};
use support::{write_private, Key, TestServer};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Runs deploy/postgres/roles.sql as the database's owner, then makes the logins.
async fn roles(admin: &Client, logins: &str) {
    let roles = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postgres/roles.sql"),
    )
    .unwrap();
    admin.batch_execute(&roles).await.unwrap();
    admin.batch_execute(logins).await.unwrap();
}

async fn revision(admin: &Client) -> i64 {
    admin
        .query_one("SELECT revision FROM ccs_revision", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operators_temporary_tables_cannot_hide_a_change() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "tmptrick", &keys).await;
    let admin = pg.client("tmptrick").await;
    roles(&admin, "CREATE ROLE oncall LOGIN IN ROLE ccs_operator;").await;
    let r1 = bed.replica(&keys, "r1").await;
    assert!(within(Duration::from_secs(10), async || poll(&r1).await.0 == 200).await);

    // roles.sql takes TEMPORARY away from every login of the state database.
    let operator = pg.client_as("oncall", "tmptrick").await;
    let e = operator
        .batch_execute("CREATE TEMP TABLE ccs_revision (revision bigint)")
        .await
        .expect_err("an operator made a temporary table");
    assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");

    // Given TEMPORARY all the same, the trick catches nothing: the owner's functions name
    // their tables in full and look in pg_temp last.
    admin
        .batch_execute("GRANT TEMPORARY ON DATABASE tmptrick TO oncall")
        .await
        .unwrap();
    let operator = pg.client_as("oncall", "tmptrick").await;
    let before = revision(&admin).await;
    operator
        .batch_execute(
            "CREATE TEMP TABLE ccs_revision (only_row boolean PRIMARY KEY DEFAULT true, revision bigint NOT NULL);
             INSERT INTO ccs_revision VALUES (true, 1000);
             CREATE TEMP TABLE ccs_audit AS SELECT * FROM public.ccs_audit WITH NO DATA;
             CREATE TEMP TABLE ccs_state_json (x int);
             SET ccs.actor = 'alice+bob';
             UPDATE ccs_key_state SET disabled = true;",
        )
        .await
        .unwrap();
    let caught: i64 = operator
        .query_one("SELECT count(*) FROM pg_temp.ccs_audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        caught, 0,
        "the change's audit record went to a temporary table"
    );
    assert_eq!(revision(&admin).await, before + 1);
    let last = admin
        .query_one(
            "SELECT actor, action, role FROM ccs_audit ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    // The claim is kept, and beside it the login the database saw.
    assert_eq!(last.get::<_, &str>(0), "alice+bob");
    assert_eq!(last.get::<_, &str>(1), "disable");
    assert_eq!(last.get::<_, Option<&str>>(2), Some("oncall"));
    assert!(
        within(Duration::from_secs(2), async || poll(&r1).await.0 == 404).await,
        "the replica did not apply the disable"
    );
    let (code, out, err) = bed.cli(&["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = bed.cli(&["audit", "show"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("oncall"), "audit show names the login: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_changed_outside_the_chain_is_withdrawn_at_once_and_never_revived() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "bypass", &keys).await;
    let admin = pg.client("bypass").await;
    let (r1, r2) = (
        bed.replica(&keys, "r1").await,
        bed.replica(&keys, "r2").await,
    );
    for r in [&r1, &r2] {
        assert!(within(Duration::from_secs(10), async || poll(r).await.0 == 200).await);
    }
    let before = revision(&admin).await;
    // A superuser's session with triggers off: no revision, no audit record, no notification.
    let hidden = async |change: &str| {
        admin
            .batch_execute(&format!(
                "SET session_replication_role = replica; UPDATE ccs_key_state SET {change};
                 RESET session_replication_role;"
            ))
            .await
            .unwrap();
    };
    hidden("disabled = true").await;
    assert_eq!(revision(&admin).await, before);
    // The heartbeat sees the rows changed: the withdrawal applies (max_staleness is 2 s, so a
    // confirmation comes every 500 ms).
    for r in [&r1, &r2] {
        assert!(
            within(Duration::from_secs(2), async || poll(r).await.0 == 404).await,
            "a hidden disable was not applied"
        );
    }
    // Back to the state of its last audited change (the import): served as the chain says.
    hidden("disabled = false").await;
    for r in [&r1, &r2] {
        assert!(within(Duration::from_secs(2), async || poll(r).await.0 == 200).await);
    }
    // An audited kill, then a hidden un-kill: never served, 503 on every replica, and it stays.
    let cli = async |action: &str| {
        let (code, out, err) = bed
            .cli(&[
                "keys",
                action,
                "--instance",
                "ccsdemo",
                "--key-id",
                "1",
                "--wait",
            ])
            .await;
        assert_eq!(code, 0, "{out}{err}");
    };
    cli("disable").await;
    assert_eq!(poll(&r1).await.0, 404);
    hidden("disabled = false").await;
    for r in [&r1, &r2] {
        assert!(
            within(Duration::from_secs(2), async || poll(r).await.0 == 503).await,
            "a hidden enable was not held in doubt"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in [&r1, &r2] {
        let reply = r
            .get(
                support::fleet::KEK,
                Some(&support::header(&support::db_cert("ccsdemo"))),
            )
            .await;
        assert_eq!(reply.status, 503);
        assert!(
            reply.error().contains("cannot be confirmed"),
            "{}",
            reply.error()
        );
    }
    // A change through the trigger records the state again, and the key is served.
    for args in [["disable"], ["enable"]] {
        let (code, out, err) = bed
            .cli(&[
                "keys",
                args[0],
                "--instance",
                "ccsdemo",
                "--key-id",
                "1",
                "--wait",
            ])
            .await;
        assert_eq!(code, 0, "{out}{err}");
    }
    for r in [&r1, &r2] {
        assert_eq!(poll(r).await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_login_writes_only_its_own_rows() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "rows", &keys).await;
    let admin = pg.client("rows").await;
    roles(
        &admin,
        "CREATE ROLE replica_a LOGIN IN ROLE ccs_serving;
         CREATE ROLE replica_b LOGIN IN ROLE ccs_serving;",
    )
    .await;
    let url_a = bed.work.path().join("url-a");
    write_private(&url_a, &pg.url_via(pg.port, "replica_a", "rows"));
    let url_b = bed.work.path().join("url-b");
    write_private(&url_b, &pg.url_via(pg.port, "replica_b", "rows"));
    let r1 = TestServer::start(&keys, &state(&url_a, "r1", "2s")).await;
    assert!(within(Duration::from_secs(10), async || poll(&r1).await.0 == 200).await);
    let recorded = within(Duration::from_secs(5), async || {
        admin
            .query_opt("SELECT login FROM ccs_poll WHERE replica = 'r1'", &[])
            .await
            .unwrap()
            .is_some_and(|row| row.get::<_, &str>(0) == "replica_a")
    });
    assert!(recorded.await, "replica_a did not record its poll");

    // Another replica's login can neither move r1's registration nor forge its polls.
    let b = pg.client_as("replica_b", "rows").await;
    let moved = b
        .execute(
            "UPDATE ccs_replica SET applied_revision = 1000000, last_seen = now() WHERE name = 'r1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(moved, 0, "replica_b moved r1's registration");
    let forged = b
        .execute("UPDATE ccs_poll SET status = 404, reason = 'forged'", &[])
        .await
        .unwrap();
    assert_eq!(forged, 0, "replica_b rewrote r1's poll outcome");
    let e = b
        .execute(
            "INSERT INTO ccs_poll (instance, key_id, replica, at, status, reason)
             VALUES ('ccsdemo', 1, 'r1', now() + interval '1 hour', 404, 'forged')",
            &[],
        )
        .await
        .expect_err("replica_b recorded a poll for r1");
    assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");
    let (code, out, err) = bed
        .cli(&["keys", "status", "--instance", "ccsdemo", "--key-id", "1"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("forged"), "{out}");

    // What a login writes in its own rows reaches no terminal raw.
    b.batch_execute(
        "INSERT INTO ccs_replica (name, version, started_at, last_seen, applied_revision)
             VALUES (E'evil\\x1b[2J', E'1\\x07', now(), now(), 0);
         INSERT INTO ccs_poll (instance, key_id, replica, at, status, reason)
             VALUES ('ccsdemo', 1, E'evil\\x1b[2J', now() + interval '1 hour', 200, E'ok\\x1b]0;pwned\\x07');",
    )
    .await
    .unwrap();
    for args in [
        &["fleet", "status"][..],
        &["keys", "status", "--instance", "ccsdemo", "--key-id", "1"],
    ] {
        let (code, out, err) = bed.cli(args).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("evil"), "{out}");
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?} printed a control character: {out:?}"
        );
    }

    // A second replica that takes r1's name under another login is refused: it never serves.
    let impostor = TestServer::start(&keys, &state(&url_b, "r1", "2s")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(poll(&impostor).await.0, 503);
    let owner: String = admin
        .query_one("SELECT login FROM ccs_replica WHERE name = 'r1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "replica_a");
    assert_eq!(poll(&r1).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_of_schema_version_2_migrates_in_place() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1), Key::new("ccsdemo", 2)];
    let bed = Bed::bare(&pg, "upgrade", &keys, None).await;
    let admin = pg.client("upgrade").await;
    // The schema as the last release made it: versions 1 and 2, with rows in every table.
    admin
        .batch_execute(&format!(
            "CREATE TABLE ccs_schema_version (version integer PRIMARY KEY,
                 description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
             {}
             {}
             INSERT INTO ccs_schema_version (version, description) VALUES (1, 'v1'), (2, 'v2');
             INSERT INTO ccs_key_state (instance, key_id, kcv) VALUES ('ccsdemo', 1, '{}'), ('ccsdemo', 2, '{}');
             UPDATE ccs_key_state SET disabled = true WHERE key_id = 2;
             UPDATE ccs_key_state SET not_after = now() + interval '7 days' WHERE key_id = 1;
             INSERT INTO ccs_replica (name, version, started_at, last_seen, applied_revision)
                 VALUES ('old', '0.1.0', now(), now(), 3);
             INSERT INTO ccs_poll (instance, key_id, replica, at, status, reason)
                 VALUES ('ccsdemo', 2, 'old', now() + interval '1 second', 404, 'disabled');
             INSERT INTO ccs_approval (id, instance, key_id, action, target, required, approvers, reasons, expires_at)
                 VALUES ('a1', 'ccsdemo', 2, 'enable', '', 2, ARRAY['soc-oncall'], ARRAY['why'], now() + interval '1 hour');
             INSERT INTO ccs_nonce (signer, nonce, until) VALUES ('soc-oncall', 'n-0123456789abcdef', 4000000000);",
            include_str!("../src/fleet/schema.sql"),
            include_str!("../src/fleet/schema_api.sql"),
            kcv(&keys[0]),
            kcv(&keys[1]),
        ))
        .await
        .unwrap();
    let (code, out, err) = bed.cli(&["db", "migrate"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied schema version 3"), "{out}");
    let count = async |table: &str| -> i64 {
        admin
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    };
    for (table, rows) in [
        ("ccs_key_state", 2),
        // One more: the migration marks key 1's renewed not_after as a lease, audited.
        ("ccs_audit", 5),
        ("ccs_replica", 1),
        ("ccs_poll", 1),
        ("ccs_approval", 1),
        ("ccs_nonce", 1),
    ] {
        assert_eq!(count(table).await, rows, "{table}");
    }
    assert_eq!(revision(&admin).await, 5);
    let lease: bool = admin
        .query_one("SELECT lease FROM ccs_key_state WHERE key_id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(lease, "a renewed not_after was not marked a lease");
    // `keys status` reads the old poll outcome.
    let (code, out, err) = bed
        .cli(&["keys", "status", "--instance", "ccsdemo", "--key-id", "2"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("old"), "{out}");
    // The old records verify beside the new ones, which carry the login.
    let (code, out, err) = bed
        .cli(&["keys", "enable", "--instance", "ccsdemo", "--key-id", "2"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = bed.cli(&["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("6 records"), "{out}");
    let (_, shown, _) = bed.cli(&["audit", "show"]).await;
    assert_eq!(shown.matches("login ").count(), 2, "{shown}");
    assert!(shown.contains("db migrate renew"), "{shown}");
    // A replica follows the migrated database.
    let r1 = bed.replica(&keys, "r1").await;
    assert!(within(Duration::from_secs(10), async || poll(&r1).await.0 == 200).await);
}

/// The KCV of a test key, as the database holds it.
fn kcv(key: &Key) -> String {
    let secret = ccs_endpoint::secret::Secret::from_hex(&key.secret).unwrap();
    secret.kcv().to_string()
}
