#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fleet (`[state] backend = "postgres"`, contract §8) against a real PostgreSQL started
//! here: replicas follow kill switches and `--wait` confirms them, a lost database (or a replica
//! cut from it) fails closed and recovers alone, changes land in one audited order, a KCV
//! mismatch is never served, migrations race safely, tampering is found, roles hold.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::fleet::{all_answer, poll, state, Bed, KEK};
use support::postgres::{within, Postgres, Proxy};
use support::process::{bin, leak_forms};
use support::{db_cert, header, write_config, write_private, Key, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_follow_every_kill_switch_and_wait_confirms_it() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "follow", &keys).await;
    let (r1, r2, r3) = (
        bed.replica(&keys, "r1").await,
        bed.replica(&keys, "r2").await,
        bed.replica(&keys, "r3").await,
    );
    let all = [&r1, &r2, &r3];
    assert!(
        within(Duration::from_secs(10), async || all_answer(
            &all,
            (200, false)
        )
        .await)
        .await
    );

    // A reason with quotes, control characters and non-ASCII: the database's trigger and
    // `audit verify` must write the same canonical JSON.
    let reason = "incident \"42\"\n\ttab \u{1} é ✓ </script>";
    let steps: [(&[&str], (u16, bool)); 4] = [
        (
            &["disable", "--key-id", "1", "--reason", reason],
            (404, false),
        ),
        (&["enable", "--key-id", "1"], (200, false)),
        (&["shutdown"], (200, true)),
        (&["restore"], (200, false)),
    ];
    for (args, expected) in steps {
        let mut cli = vec!["keys"];
        cli.extend_from_slice(args);
        cli.extend_from_slice(&["--instance", "ccsdemo", "--wait"]);
        let (code, out, err) = bed.cli(&cli).await;
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        let line = out.lines().find(|l| l.starts_with("applied on")).unwrap();
        assert!(line.starts_with("applied on 3/3 replicas in "), "{out}");
        let ms: u64 = line.split_whitespace().nth(5).unwrap().parse().unwrap();
        assert!(ms < 1000, "{line}");
        // --wait returned: every replica answers the new state now, without waiting.
        for server in all {
            assert_eq!(poll(server).await, expected, "{args:?} on {}", server.addr);
        }
        if args[0] == "shutdown" {
            let reached = within(Duration::from_secs(5), async || {
                let (_, out, _) = bed
                    .cli(&["keys", "status", "--instance", "ccsdemo", "--key-id", "1"])
                    .await;
                out.contains("the kill reached the database at ")
                    && out.contains(", via replica r3")
            });
            assert!(
                reached.await,
                "keys status never saw the kill reach the database"
            );
            // Beside the verdict: the key's state and what its last poll was answered.
            let (_, out, _) = bed
                .cli(&["keys", "status", "--instance", "ccsdemo", "--key-id", "1"])
                .await;
            assert!(out.contains("\n  state      shut down at "), "{out}");
            assert!(
                out.contains("\n  last poll  ") && out.contains("via replica r3: answered 200"),
                "{out}"
            );
            let (_, out, _) = bed
                .cli(&["keys", "status", "--instance", "ccsdemo", "--json"])
                .await;
            let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            assert_eq!(json["state"], "shut_down", "{out}");
            assert_eq!(json["last_poll"]["status"], 200, "{out}");
            assert_eq!(json["last_poll"]["replica"], "r3", "{out}");
        }
    }

    let (code, out, _) = bed.cli(&["fleet", "status", "--json"]).await;
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let revision = status["revision"].as_i64().unwrap();
    let replicas = status["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3, "{out}");
    for r in replicas {
        assert_eq!(r["status"], "live", "{out}");
        assert_eq!(r["applied_revision"].as_i64(), Some(revision), "{out}");
    }

    let (code, out, err) = bed.cli(&["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit chain intact: 5 records"), "{out}");
    let (_, out, _) = bed
        .cli(&["audit", "show", "--instance", "ccsdemo", "--json"])
        .await;
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["import", "disable", "enable", "shutdown", "restore"]
    );
    assert_eq!(records[1]["reason"], reason);
    assert_eq!(records[1]["actor"], "cli:alice");

    // The replica's metrics say which revision it serves and that the state is fresh.
    let (_, metrics) = r1.admin_get("/metrics").await;
    assert_eq!(
        support::sample(&metrics, "ccs_state_applied_revision"),
        Some(revision as f64)
    );
    assert_eq!(
        support::sample(&metrics, "ccs_state_database_up"),
        Some(1.0)
    );
    assert_eq!(support::sample(&metrics, "ccs_state_stale"), Some(0.0));
    assert!(support::sample(&metrics, "ccs_state_age_seconds").unwrap() < 2.0);
    // Every fleet series the alert rules and the dashboard query is one a replica exports.
    support::assert_exported(&metrics, "ccs_state_");

    // No secret reached the database or the CLI's output.
    let client = pg.client("follow").await;
    let mut dump = String::new();
    for table in ["ccs_key_state", "ccs_audit", "ccs_replica", "ccs_poll"] {
        for row in client
            .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
            .await
            .unwrap()
        {
            dump.push_str(row.get::<_, &str>(0));
        }
    }
    assert!(dump.contains("ccsdemo"));
    for form in leak_forms(&keys[0].secret) {
        assert!(!dump.contains(&form), "a secret is in the database");
        assert!(!out.contains(&form), "a secret is in the CLI's output");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_database_fails_closed_everywhere_and_recovery_needs_no_restart() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "lost", &keys).await;
    let (r1, r2) = (
        bed.replica(&keys, "r1").await,
        bed.replica(&keys, "r2").await,
    );
    assert!(
        within(Duration::from_secs(10), async || all_answer(
            &[&r1, &r2],
            (200, false)
        )
        .await)
        .await
    );

    let stop = || {
        let pg = &pg;
        std::thread::scope(|s| s.spawn(|| pg.stop()).join().unwrap());
    };
    stop();
    let stopped = Instant::now();
    // Until max_staleness (2 s) the last confirmed state may answer; after it, only 503; never
    // a 404, and no 200 once a replica has said 503.
    let mut unavailable = [None, None];
    while stopped.elapsed() < Duration::from_millis(3500) {
        for (i, server) in [&r1, &r2].into_iter().enumerate() {
            // Judged by when the poll was sent: an answer's arrival also measures a loaded
            // machine's handshake.
            let sent = stopped.elapsed();
            let (status, _) = poll(server).await;
            assert!(
                status == 200 || status == 503,
                "answered {status} while the database is down"
            );
            assert!(
                status != 200 || sent <= Duration::from_millis(2300),
                "200 for a poll sent {sent:?} after the database stopped"
            );
            match (status, unavailable[i]) {
                (503, None) => unavailable[i] = Some(stopped.elapsed()),
                (200, Some(at)) => panic!("200 after the state went stale at {at:?}"),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for at in unavailable {
        at.expect("a replica still answers 200 long after the database went away");
    }
    let (status, body) = r1.admin_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_staleness"), "{body}");
    let reply = r1.get(KEK, Some(&header(&db_cert("ccsdemo")))).await;
    assert_eq!(
        reply.json()["errorId"].as_str().map(str::len),
        Some(16),
        "{}",
        reply.body
    );
    let (_, metrics) = r1.admin_get("/metrics").await;
    assert_eq!(support::sample(&metrics, "ccs_state_stale"), Some(1.0));
    assert_eq!(
        support::sample(&metrics, "ccs_state_database_up"),
        Some(0.0)
    );

    // A replica that starts while the database is down answers neither 200 nor 404.
    let r3 = bed.replica(&keys, "r3").await;
    assert_eq!(poll(&r3).await.0, 503);
    assert_eq!(r3.admin_get("/readyz").await.0, 503);

    pg.resume();
    let back = within(Duration::from_secs(10), async || {
        all_answer(&[&r1, &r2, &r3], (200, false)).await
    });
    assert!(
        back.await,
        "replicas did not recover after the database returned"
    );
    assert_eq!(r1.admin_get("/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_from_the_database_fails_closed_alone() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "cut", &keys).await;
    let proxy = Proxy::start(pg.port).await;
    let cut_url = bed.work.path().join("cut-url");
    write_private(&cut_url, &pg.url_via(proxy.port, "postgres", "cut"));
    let r1 = TestServer::start(&keys, &state(&cut_url, "r1", "2s")).await;
    let r2 = bed.replica(&keys, "r2").await;
    assert!(
        within(Duration::from_secs(10), async || all_answer(
            &[&r1, &r2],
            (200, false)
        )
        .await)
        .await
    );

    proxy.cut();
    let cut = Instant::now();
    assert!(within(Duration::from_secs(3), async || poll(&r1).await.0 == 503).await);
    assert!(
        cut.elapsed() < Duration::from_millis(2600),
        "{:?}",
        cut.elapsed()
    );
    assert_eq!(
        poll(&r2).await,
        (200, false),
        "the replica that reaches the database serves"
    );

    // A kill while r1 is cut: r2 applies it; r1 is no longer live, so --wait does not wait
    // for it, and r1 keeps answering 503 (never the 200 it last knew).
    let (code, out, err) = bed
        .cli(&[
            "keys",
            "disable",
            "--instance",
            "ccsdemo",
            "--key-id",
            "1",
            "--wait",
        ])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied on 1/1 replicas"), "{out}");
    assert_eq!(poll(&r2).await.0, 404);
    assert_eq!(poll(&r1).await.0, 503);
    let (_, out, _) = bed.cli(&["fleet", "status"]).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("r1") && l.contains("lost")),
        "{out}"
    );

    proxy.mend();
    assert!(within(Duration::from_secs(10), async || poll(&r1).await.0 == 404).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_secret_has_another_kcv_never_serves_it() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "kcv", &keys).await;
    let good = bed.replica(&keys, "good").await;
    let other = [Key::new("ccsdemo", 1)];
    let bad = bed.replica(&other, "bad").await;
    assert!(within(Duration::from_secs(10), async || poll(&good).await.0 == 200).await);
    let reply = bad.get(KEK, Some(&header(&db_cert("ccsdemo")))).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(!reply.body.contains("wrappedKey"), "{}", reply.body);
    let (_, metrics) = bad.admin_get("/metrics").await;
    assert!(
        metrics.contains("reason=\"kcv_mismatch\""),
        "no kcv_mismatch series:\n{metrics}"
    );
    // The right secret put in the replica's key-store file is served after its reload.
    let store = format!(
        "[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{}\"\n",
        keys[0].secret
    );
    support::replace_file(&bad.dir.path().join("keys.toml"), &store);
    assert!(within(Duration::from_secs(10), async || poll(&bad).await.0 == 200).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_land_in_one_order_the_audit_chain_records() {
    use ccs_endpoint::fleet::change::{change, Action};
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "sequence", &keys).await;
    let instance = ccs_endpoint::protocol::InstanceName::parse("ccsdemo").unwrap();
    let mut tasks = Vec::new();
    for writer in 0..6 {
        let (url, instance) = (pg.url("sequence"), instance.clone());
        tasks.push(tokio::spawn(async move {
            let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            for i in 0..10 {
                let action = if (writer + i) % 2 == 0 {
                    Action::Disable
                } else {
                    Action::Enable
                };
                change(
                    &mut client,
                    &format!("cli:w{writer}"),
                    &instance,
                    Some(1),
                    action,
                    "race",
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (code, out, err) = bed.cli(&["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let client = pg.client("sequence").await;
    let records = ccs_endpoint::fleet::report::audit(&client, None)
        .await
        .unwrap();
    // One order: each change starts from the state the one before it left.
    for pair in records.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(pair[1].before, pair[0].after, "seq {}", pair[1].seq);
    }
    let row = client
        .query_one("SELECT disabled, revision FROM ccs_key_state", &[])
        .await
        .unwrap();
    let last = records.last().unwrap();
    assert_eq!(
        Some(row.get::<_, bool>(0)),
        last.after.as_ref().map(|s| s.disabled)
    );
    assert_eq!(row.get::<_, i64>(1) as u64, last.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_race_safely_and_a_tampered_audit_row_is_named() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let url = pg.create_db("race").await;
    let work = tempfile::tempdir().unwrap();
    let url_file = work.path().join("state-url");
    write_private(&url_file, &url);
    let config = write_config(work.path(), &keys, &state(&url_file, "op", "2s"));
    let migrate = || {
        let mut cmd = bin();
        cmd.args(["db", "migrate", "--config"]).arg(&config);
        cmd.spawn().unwrap()
    };
    let (a, b) = (migrate(), migrate());
    for child in [a, b] {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let client = pg.client("race").await;
    let versions: i64 = client
        .query_one("SELECT count(*) FROM ccs_schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, i64::from(ccs_endpoint::fleet::schema::latest()));
    let bed = Bed {
        work,
        url_file,
        config,
    };
    let (code, out, _) = bed.cli(&["db", "migrate"]).await;
    assert_eq!(code, 0);
    let current = format!(
        "schema is current (version {})",
        ccs_endpoint::fleet::schema::latest()
    );
    assert!(out.contains(&current), "{out}");

    let keys_file = bed.work.path().join("keys.toml");
    bed.cli(&["db", "import-states", "--from", keys_file.to_str().unwrap()])
        .await;
    for action in ["disable", "enable", "disable", "enable"] {
        let (code, ..) = bed
            .cli(&["keys", action, "--instance", "ccsdemo", "--key-id", "1"])
            .await;
        assert_eq!(code, 0);
    }
    assert_eq!(bed.cli(&["audit", "verify"]).await.0, 0);
    client
        .batch_execute("UPDATE ccs_audit SET reason = 'nothing to see' WHERE seq = 3")
        .await
        .unwrap();
    let (code, _, err) = bed.cli(&["audit", "verify"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("record seq 3 was changed"), "{err}");
    // A replica verifies the chain too, and says so in ccs_audit_chain_ok (alert
    // CcsAuditChainBroken).
    let replica = bed.replica(&keys, "watcher").await;
    let broken = within(Duration::from_secs(10), async || {
        let (_, metrics) = replica.admin_get("/metrics").await;
        support::sample(&metrics, "ccs_audit_chain_ok") == Some(0.0)
    })
    .await;
    assert!(broken, "the replica did not report the broken chain");
    drop(replica);
    client
        .batch_execute("DELETE FROM ccs_audit WHERE seq IN (3, 4)")
        .await
        .unwrap();
    let (code, _, err) = bed.cli(&["audit", "verify"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("at seq 5: expected seq 3"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn least_privilege_roles_serve_and_change_but_never_rewrite_the_audit() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "roles", &keys).await;
    let admin = pg.client("roles").await;
    let roles = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postgres/roles.sql"),
    )
    .unwrap();
    admin.batch_execute(&roles).await.unwrap();
    admin
        .batch_execute(&roles)
        .await
        .expect("roles.sql runs twice");
    admin
        .batch_execute(
            "CREATE ROLE replica_a LOGIN IN ROLE ccs_serving;
             CREATE ROLE oncall LOGIN IN ROLE ccs_operator;",
        )
        .await
        .unwrap();
    let serving = pg.client_as("replica_a", "roles").await;
    let operator = pg.client_as("oncall", "roles").await;
    let denied = async |client: &tokio_postgres::Client, sql: &str| {
        let e = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {e}"
        );
    };
    denied(&serving, "UPDATE ccs_key_state SET disabled = true").await;
    denied(&serving, "DELETE FROM ccs_key_state").await;
    denied(&operator, "UPDATE ccs_audit SET reason = 'x'").await;
    denied(&operator, "DELETE FROM ccs_audit").await;
    denied(&operator, "INSERT INTO ccs_audit SELECT * FROM ccs_audit").await;
    denied(&operator, "UPDATE ccs_revision SET revision = 0").await;
    // The operator's change is audited by the trigger all the same.
    operator
        .batch_execute("UPDATE ccs_key_state SET disabled = true")
        .await
        .unwrap();
    let last = admin
        .query_one(
            "SELECT actor, action FROM ccs_audit ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(last.get::<_, &str>(0), "db:oncall");
    assert_eq!(last.get::<_, &str>(1), "disable");

    // A replica connecting as the serving role registers, follows and records polls.
    let url_file = bed.work.path().join("replica-url");
    write_private(&url_file, &pg.url_via(pg.port, "replica_a", "roles"));
    let r1 = TestServer::start(&keys, &state(&url_file, "r1", "2s")).await;
    assert!(within(Duration::from_secs(10), async || poll(&r1).await.0 == 404).await);
    let recorded = within(Duration::from_secs(5), async || {
        admin
            .query_opt("SELECT status FROM ccs_poll WHERE replica = 'r1'", &[])
            .await
            .unwrap()
            .is_some_and(|row| row.get::<_, i32>(0) == 404)
    });
    assert!(recorded.await, "the serving role could not record a poll");
}

#[test]
fn a_fleet_key_store_holds_secrets_only() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    write_private(&url_file, "postgresql://postgres@127.0.0.1:1/x");
    let keys = [Key::new("ccsdemo", 1).with("disabled = true")];
    let config = write_config(dir.path(), &keys, &state(&url_file, "r1", "2s"));
    let error = ccs_endpoint::runtime::Loaded::from_file(&config)
        .err()
        .expect("a state in a fleet's key store is refused")
        .to_string();
    assert!(error.contains("keys.toml: entry 1"), "{error}");
    assert!(error.contains("field `disabled`"), "{error}");
    assert!(error.contains("one source of truth"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_to_the_database_is_verified_against_the_configured_ca() {
    let p = support::pki();
    let pg = Postgres::start_tls(&p.server.cert_pem(), &p.server.key_pem());
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::with_ca(&pg, "tls", &keys, Some(&p.server_ca.cert_pem())).await;
    std::fs::write(bed.work.path().join("other-ca.pem"), p.root_a.cert_pem()).unwrap();
    let with_ca = |name: &str, ca: &str| {
        format!(
            "{}ca = \"{}\"\n",
            state(&bed.url_file, name, "2s"),
            bed.work.path().join(ca).display()
        )
    };
    let trusted = TestServer::start(&keys, &with_ca("trusted", "db-ca.pem")).await;
    let impostor = TestServer::start(&keys, &with_ca("wrong-ca", "other-ca.pem")).await;
    assert!(
        within(Duration::from_secs(10), async || poll(&trusted).await.0
            == 200)
        .await
    );
    let client = pg.client("tls").await;
    let ssl: bool = client
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'ccs-endpoint trusted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the replica's connection is not TLS");
    // A database whose certificate the CA did not sign is never trusted: no state, 503. The
    // operator without the CA is refused too, and told what to set.
    let (code, _, err) = bed.cli(&["fleet", "status"]).await;
    assert_eq!(code, 0, "{err}");
    let plain = Bed {
        work: tempfile::tempdir().unwrap(),
        url_file: bed.url_file.clone(),
        config: PathBuf::new(),
    };
    let config = write_config(plain.work.path(), &keys, &state(&bed.url_file, "op", "2s"));
    let plain = Bed { config, ..plain };
    let (code, _, err) = plain.cli(&["fleet", "status"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("UnknownIssuer") && err.contains("[state] ca"),
        "{err}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(poll(&impostor).await.0, 503);
    let (status, body) = impostor.admin_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("has not been read"), "{body}");
}

/// The `ccs-endpoint` lines of the runbooks' `sh fleet` blocks, with the exit status each
/// expects.
fn fleet_runbook() -> Vec<(Vec<String>, i32)> {
    support::runbook("fleet")
        .into_iter()
        .map(|line| (line.args, line.code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_runbooks_run_as_written() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::bare(&pg, "runbook", &keys, None).await;
    let commands = fleet_runbook();
    assert!(commands.len() >= 10, "{commands:?}");
    let mut replicas = Vec::new();
    for (words, expected) in commands {
        // The replicas start once the set-up is done (before the first kill switch).
        if words[0] == "keys" && replicas.is_empty() {
            for name in ["r1", "r2", "r3"] {
                replicas.push(bed.replica(&keys, name).await);
            }
            let all: Vec<&TestServer> = replicas.iter().collect();
            assert!(
                within(Duration::from_secs(10), async || all_answer(
                    &all,
                    (200, false)
                )
                .await)
                .await
            );
        }
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let (code, out, err) = bed.cli(&args).await;
        assert_eq!(
            code,
            expected,
            "ccs-endpoint {}: {out}{err}",
            words.join(" ")
        );
        if words.iter().any(|w| w == "--wait") {
            assert!(out.contains("applied on 3/3 replicas in "), "{out}");
        }
    }
    assert_eq!(replicas.len(), 3, "the runbook throws no kill switch");
}

/// With max_staleness 5 s a replica confirms every 1.25 s, longer than the 1 s flush of poll
/// outcomes: while nothing changes and polls keep coming, it must stay confirmed (a confirmation
/// timer restarted by every other event never fired, and an idle fleet went stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_replica_polled_steadily_stays_confirmed() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "idle", &keys).await;
    let r1 = TestServer::start(&keys, &state(&bed.url_file, "r1", "5s")).await;
    assert!(within(Duration::from_secs(10), async || poll(&r1).await.0 == 200).await);
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(8) {
        assert_eq!(poll(&r1).await.0, 200, "after {:?}", began.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, metrics) = r1.admin_get("/metrics").await;
    let age = support::sample(&metrics, "ccs_state_age_seconds").unwrap();
    assert!(age < 2.5, "the state was last confirmed {age} s ago");
}

/// The database URL may hold a password: it appears in no log line, error or output, whatever
/// goes wrong (here: nothing listens where it points).
#[test]
fn the_database_password_is_never_shown() {
    const PASSWORD: &str = "Pa55-never-shown";
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("state-url");
    let port = support::process::free_port();
    write_private(
        &url_file,
        &format!("postgresql://ccs:{PASSWORD}@127.0.0.1:{port}/ccs?connect_timeout=1\n"),
    );
    let keys = [Key::new("ccsdemo", 1)];
    let (mut server, _) =
        support::process::spawn_configured(dir.path(), &keys, &state(&url_file, "r1", "2s"));
    server.wait_for("the database cannot be reached");
    server.wait_for("retry_in_ms=400");
    server.terminate();
    let mut shown = server.output();
    let config = dir.path().join("ccs-endpoint.toml");
    for args in [
        &["fleet", "status"][..],
        &["db", "migrate"],
        &["audit", "verify"],
        &[
            "keys",
            "disable",
            "--instance",
            "ccsdemo",
            "--key-id",
            "1",
            "--wait",
        ],
        &["check"],
    ] {
        let out = bin()
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        shown.push_str(&String::from_utf8_lossy(&out.stdout));
        shown.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        shown.contains("Connection refused") || shown.contains("connection refused"),
        "{shown}"
    );
    assert!(
        !shown.contains(PASSWORD),
        "the password was shown:\n{shown}"
    );
    for form in leak_forms(&keys[0].secret) {
        assert!(!shown.contains(&form), "a secret was shown");
    }
}
