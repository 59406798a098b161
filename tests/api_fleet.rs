#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The signed admin API of a fleet (contract §8, §9) against a real PostgreSQL: a request may
//! reach any replica behind the load balancer, so the quorum's approvals and the one-time
//! nonces are shared in the database; a change is answered once every live replica applied it,
//! and the database's audit chain names its signers. The client is Python's
//! `http-message-signatures` (PyPI).

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ccs_endpoint::httpsig::{self, Algorithm, Message, Signing};
use ccs_endpoint::tools::pki::{self, Issued, KeyKind};
use serde_json::json;
use support::api::{add_signer, call, Signer};
use support::fleet::{all_answer, state, Bed};
use support::postgres::{within, Postgres};
use support::{raw_request, write_private, Key, TestServer};

/// The escrow certificate of `[api] export_to`.
fn escrow() -> &'static Issued {
    static ESCROW: OnceLock<Issued> = OnceLock::new();
    ESCROW.get_or_init(|| pki::ca("escrow", KeyKind::Rsa2048).unwrap())
}

/// A replica whose API answers to the load balancer's name and to its own address.
async fn replica(bed: &Bed, keys: &[Key], name: &str, signers: &str) -> TestServer {
    replica_with(bed, keys, name, signers, "").await
}

/// As `replica`, with more `[api]` lines.
async fn replica_with(bed: &Bed, keys: &[Key], name: &str, signers: &str, api: &str) -> TestServer {
    let port = support::process::free_port();
    let config = format!(
        "{}[api]\nlisten = \"127.0.0.1:{port}\"\nsigners = \"signers.toml\"\nexport_to = [\"escrow.crt\"]\nnames = [\"ccs.example.com\", \"127.0.0.1:{port}\"]\n{api}",
        state(&bed.url_file, name, "2s")
    );
    TestServer::start_with_files(keys, &config, |dir| {
        support::write_private(&dir.join("signers.toml"), signers);
        std::fs::write(dir.join("escrow.crt"), escrow().cert_pem()).unwrap();
    })
    .await
}

fn post(
    server: &TestServer,
    signer: &Signer,
    action: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let path = format!("/v1/keys/ccsdemo/1/{action}");
    tokio::task::block_in_place(|| {
        call(
            server.api.unwrap(),
            signer,
            "POST",
            &path,
            &body.to_string(),
        )
    })
}

/// A GET /v1/keys signed for the load balancer's name, sent to `server` as the balancer would
/// forward it.
async fn through_balancer(server: &TestServer, headers: &[(String, String)]) -> u16 {
    let mut raw =
        "GET /v1/keys HTTP/1.1\r\nHost: ccs.example.com\r\nConnection: close\r\n".to_owned();
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw_request(server.api.unwrap(), &rustls::version::TLS13, raw.as_bytes())
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_approvals_nonces_and_the_audit_chain() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "api", &keys).await;
    let file = bed.work.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status,disable,enable,export");
    let lead = add_signer(&file, "sec-lead", "status,enable,export");
    let signers = std::fs::read_to_string(&file).unwrap();
    let (r1, r2) = (
        replica(&bed, &keys, "r1", &signers).await,
        replica(&bed, &keys, "r2", &signers).await,
    );
    let both = [&r1, &r2];
    assert!(
        within(Duration::from_secs(10), async || all_answer(
            &both,
            (200, false)
        )
        .await)
        .await
    );

    // A kill through one replica is answered once both serve it.
    let (status, body) = post(&r1, &soc, "disable", json!({"reason": "INC-11"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["replicas"],
        json!({"applied": 2, "total": 2}),
        "{body}"
    );
    assert!(all_answer(&both, (404, false)).await);

    // The undo's two signers reach different replicas: one approval, shared.
    let (status, first) = post(&r1, &soc, "enable", json!({"reason": "false alarm"}));
    assert_eq!(status, 202, "{first}");
    let (status, listed) =
        tokio::task::block_in_place(|| call(r2.api.unwrap(), &lead, "GET", "/v1/approvals", ""));
    assert_eq!(status, 200);
    assert_eq!(listed["approvals"][0]["id"], first["approval"], "{listed}");
    assert!(
        all_answer(&both, (404, false)).await,
        "one signer undid the kill"
    );
    let (status, done) = post(&r2, &lead, "enable", json!({"reason": "confirmed"}));
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["approvers"], json!(["soc-oncall", "sec-lead"]));
    assert!(all_answer(&both, (200, false)).await);

    // The key's status, from either replica, names the change and the last poll's replica.
    let (status, key) = tokio::task::block_in_place(|| {
        call(r2.api.unwrap(), &soc, "GET", "/v1/keys/ccsdemo/1", "")
    });
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["last_change"]["actor"], "soc-oncall+sec-lead", "{key}");
    assert!(key["last_change"]["reason"]
        .as_str()
        .unwrap()
        .contains("confirmed"));

    // A signed request replayed to the other replica behind the same name is refused there.
    let secret = BASE64.decode(&soc.secret).unwrap();
    let message = Message {
        method: "GET",
        authority: "ccs.example.com",
        path_and_query: "/v1/keys",
        headers: &[],
        body: b"",
    };
    let signing = Signing {
        label: "sig1",
        keyid: "soc-oncall",
        algorithm: Algorithm::HmacSha256,
        secret: &secret,
        created: time::OffsetDateTime::now_utc().unix_timestamp(),
        nonce: "once-only-4f1c-0000",
    };
    let headers = httpsig::sign(&message, signing).unwrap();
    assert_eq!(through_balancer(&r1, &headers).await, 200);
    assert_eq!(
        through_balancer(&r2, &headers).await,
        401,
        "a replay was taken by another replica"
    );

    // Escrow, begun on one replica and completed on the other; the database's chain has it.
    let sha = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        escrow().cert_der(),
    ));
    let body = json!({"certificate_sha256": sha, "reason": "escrow"});
    assert_eq!(post(&r1, &soc, "export", body.clone()).0, 202);
    let (status, done) = post(&r2, &lead, "export", body);
    assert_eq!(status, 200, "{done}");
    let wrapped = BASE64
        .decode(done["record"]["wrappedKey"].as_str().unwrap())
        .unwrap();
    write_private(&bed.work.path().join("escrow.key"), &escrow().key_pem());
    let unwrapped = support::openssl_unwrap(
        &bed.work.path().join("escrow.key"),
        &wrapped,
        bed.work.path(),
    );
    assert_eq!(hex::encode(unwrapped), keys[0].secret.to_ascii_lowercase());

    // The database's chain verifies and names the signers.
    let (code, out, err) = bed.cli(&["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (_, chain, _) = bed.cli(&["audit", "show"]).await;
    assert!(chain.contains("soc-oncall+sec-lead"), "{chain}");
    assert!(chain.contains("INC-11"), "{chain}");
    assert!(chain.contains("soc-oncall+sec-lead export"), "{chain}");

    // The database gone: a change cannot be made, so it is never answered as made (503), and
    // nothing was applied when it comes back.
    pg.stop();
    let began = std::time::Instant::now();
    let (status, body) = post(&r1, &soc, "disable", json!({"reason": "while down"}));
    assert_eq!(status, 503, "{body}");
    assert!(
        began.elapsed() < Duration::from_secs(12),
        "{:?}",
        began.elapsed()
    );
    pg.resume();
    assert!(
        within(Duration::from_secs(15), async || all_answer(
            &both,
            (200, false)
        )
        .await)
        .await
    );
    let (_, chain, _) = bed.cli(&["audit", "show"]).await;
    assert!(!chain.contains("while down"), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_quorum_for_the_fleet_whatever_a_replica_is_configured_with() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "quorum", &keys).await;
    let file = bed.work.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status,disable,enable");
    let lead = add_signer(&file, "sec-lead", "status,enable");
    let signers = std::fs::read_to_string(&file).unwrap();
    let strict = replica(&bed, &keys, "r1", &signers).await;
    // A replica whose own configuration lets one signer un-kill.
    let lax = replica_with(&bed, &keys, "r2", &signers, "[api.quorum]\nenable = 1\n").await;
    let both = [&strict, &lax];
    assert!(
        within(Duration::from_secs(10), async || all_answer(
            &both,
            (200, false)
        )
        .await)
        .await
    );
    let (status, body) = post(&strict, &soc, "disable", json!({"reason": "INC-7"}));
    assert_eq!(status, 200, "{body}");
    // One signer through the lax replica: pending, as the fleet's quorum (2) says.
    let (status, body) = post(&lax, &soc, "enable", json!({"reason": "alone"}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["required"], 2, "{body}");
    assert!(all_answer(&both, (404, false)).await);
    let (status, body) = post(&lax, &lead, "enable", json!({"reason": "second"}));
    assert_eq!(status, 200, "{body}");
    assert!(
        within(Duration::from_secs(5), async || all_answer(
            &both,
            (200, false)
        )
        .await)
        .await
    );
}

/// contract §10: a change through the API carries its signed requests, and `audit verify
/// --signers` checks them again; a record made in SQL that claims signers, or one that
/// borrows the signatures of another, is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chain_proves_who_signed_each_api_change() {
    let pg = Postgres::start();
    let keys = [Key::new("ccsdemo", 1)];
    let bed = Bed::new(&pg, "proof", &keys).await;
    let file = bed.work.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status,disable,enable");
    let lead = add_signer(&file, "sec-lead", "status,enable");
    let signers = std::fs::read_to_string(&file).unwrap();
    let r1 = replica(&bed, &keys, "r1", &signers).await;
    assert!(
        within(Duration::from_secs(10), async || all_answer(
            &[&r1],
            (200, false)
        )
        .await)
        .await
    );
    let (status, killed) = post(&r1, &soc, "disable", json!({"reason": "INC-12"}));
    assert_eq!(status, 200, "{killed}");
    // The replica exports the head the change printed as soon as it applied it (not at the
    // next verification of the chain, minutes later).
    let (seq, hash) = killed["audit_head"]
        .as_str()
        .unwrap()
        .split_once(':')
        .unwrap();
    let series = format!("ccs_audit_head{{hash=\"{hash}\"}}");
    let seq: f64 = seq.parse().unwrap();
    assert!(
        within(Duration::from_secs(2), async || {
            let (_, metrics) = r1.admin_get("/metrics").await;
            support::sample(&metrics, &series) == Some(seq)
        })
        .await,
        "{series} {seq}"
    );
    assert_eq!(post(&r1, &soc, "enable", json!({"reason": "over"})).0, 202);
    assert_eq!(
        post(&r1, &lead, "enable", json!({"reason": "agreed"})).0,
        200
    );
    let signers_file = file.to_str().unwrap();
    let (code, out, err) = bed
        .cli(&["audit", "verify", "--signers", signers_file])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("signatures verified: 2 API changes, 3 signatures"),
        "{out}"
    );
    let (_, shown, _) = bed.cli(&["audit", "show"]).await;
    assert!(shown.contains("signed 2"), "{shown}");

    // In SQL, a kill recorded as the on-call signer's: the chain holds, the signatures do not.
    let admin = pg.client("proof").await;
    admin
        .batch_execute(
            "BEGIN; SELECT set_config('ccs.actor', 'soc-oncall', true);
             UPDATE ccs_key_state SET disabled = true; COMMIT;",
        )
        .await
        .unwrap();
    let forged: i64 = admin
        .query_one("SELECT max(seq) FROM ccs_audit", &[])
        .await
        .unwrap()
        .get(0);
    let (code, out, err) = bed.cli(&["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = bed
        .cli(&["audit", "verify", "--signers", signers_file])
        .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("record seq {forged}:")) && err.contains("carries no signatures"),
        "{err}"
    );

    // Undone from the CLI, then killed again in SQL with the first kill's signatures borrowed.
    assert_eq!(
        bed.cli(&["keys", "enable", "--instance", "ccsdemo", "--key-id", "1"])
            .await
            .0,
        0
    );
    admin
        .batch_execute(
            "BEGIN; SELECT set_config('ccs.actor', 'soc-oncall', true),
                    set_config('ccs.signatures', (SELECT signatures FROM ccs_audit
                        WHERE action = 'disable' AND signatures IS NOT NULL), true);
             UPDATE ccs_key_state SET disabled = true; COMMIT;",
        )
        .await
        .unwrap();
    let borrowed: i64 = admin
        .query_one("SELECT max(seq) FROM ccs_audit", &[])
        .await
        .unwrap()
        .get(0);
    let (code, out, err) = bed
        .cli(&[
            "audit",
            "verify",
            "--signers",
            signers_file,
            "--signers-from",
            &(forged + 1).to_string(),
        ])
        .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("record seq {borrowed}:"))
            && err.contains("stands behind record seq"),
        "{err}"
    );
    assert!(!err.contains(&format!("record seq {forged}:")), "{err}");

    // A signed request's path changed (a kill turned into an undo) no longer verifies.
    admin
        .batch_execute(
            "BEGIN; SELECT set_config('ccs.actor', 'soc-oncall', true),
                    set_config('ccs.signatures', replace((SELECT signatures FROM ccs_audit
                        WHERE action = 'disable' AND signatures IS NOT NULL ORDER BY seq LIMIT 1),
                        '/1/disable', '/1/enable'),
                        true);
             UPDATE ccs_key_state SET disabled = false; COMMIT;",
        )
        .await
        .unwrap();
    let (code, out, err) = bed
        .cli(&[
            "audit",
            "verify",
            "--signers",
            signers_file,
            "--signers-from",
            &(borrowed + 1).to_string(),
        ])
        .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("bad signature"), "{err}");
    assert!(err.contains("problem(s) with the signatures"), "{err}");

    // An enable (quorum 2) finished in SQL with the one pending vote's signed request, which a
    // login that may read ccs_approval finds there: every signature verifies, the quorum does
    // not.
    assert!(
        within(Duration::from_secs(10), async || all_answer(
            &[&r1],
            (200, false)
        )
        .await)
        .await
    );
    assert_eq!(post(&r1, &soc, "disable", json!({})).0, 200);
    assert_eq!(post(&r1, &soc, "enable", json!({})).0, 202);
    admin
        .batch_execute(
            "BEGIN; SELECT set_config('ccs.actor', 'soc-oncall', true),
                    set_config('ccs.action', 'enable', true),
                    set_config('ccs.signatures',
                        (SELECT '[' || evidence[1] || ']' FROM ccs_approval LIMIT 1), true);
             UPDATE ccs_key_state SET disabled = false; COMMIT;",
        )
        .await
        .unwrap();
    let laundered: i64 = admin
        .query_one("SELECT max(seq) FROM ccs_audit", &[])
        .await
        .unwrap()
        .get(0);
    let (code, out, err) = bed
        .cli(&[
            "audit",
            "verify",
            "--signers",
            signers_file,
            "--signers-from",
            &(laundered - 1).to_string(),
        ])
        .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "record seq {laundered}: enable needs 2 distinct signers"
        )),
        "{err}"
    );
    assert!(
        !err.contains(&format!("record seq {}:", laundered - 1)),
        "the API's own disable is proven: {err}"
    );
}
