#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The signed admin API (contract §9) on a single node, driven by an independent client —
//! Python's `http-message-signatures` (PyPI) signing and sending over HTTPS: every action and
//! its effect on the polls, quorum, the audit chain, each 401 rule, signers reloaded (and a
//! broken signers file failing closed), the service port still GET-only, and the operator's
//! own client `ccs-endpoint api` as a runbook runs it.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};
use support::api::{add_signer, call, now, request, send, Signer};
use support::process::{bin, free_port, spawn_configured};
use support::{db_cert, header, write_private, Key, TestServer};

const KEK: &str = "/kek/ccsdemo/1";

fn api_config(listen: &str) -> String {
    format!("[api]\nlisten = \"{listen}\"\nsigners = \"signers.toml\"\n")
}

/// A server with `[api]`, its signers made by `signers add` before it starts.
async fn server(keys: &[Key], signers: &[(&str, &str)]) -> (TestServer, Vec<Signer>) {
    let made = std::cell::RefCell::new(Vec::new());
    let server = TestServer::start_with_files(keys, &api_config("127.0.0.1:0"), |dir| {
        for (key_id, actions) in signers {
            made.borrow_mut()
                .push(add_signer(&dir.join("signers.toml"), key_id, actions));
        }
    })
    .await;
    (server, made.into_inner())
}

/// The status of a poll for ccsdemo/1, and whether its `validUntil` has passed.
async fn poll(server: &TestServer) -> (u16, bool) {
    let reply = server.get(KEK, Some(&header(&db_cert("ccsdemo")))).await;
    let past = reply.status == 200 && {
        let until = reply.json()["validUntil"].as_str().unwrap().to_owned();
        ccs_endpoint::keystore::parse_time(&until).unwrap() <= time::OffsetDateTime::now_utc()
    };
    (reply.status, past)
}

fn time_of(value: &Value) -> time::OffsetDateTime {
    ccs_endpoint::keystore::parse_time(value.as_str().unwrap()).unwrap()
}

fn post(api: SocketAddr, signer: &Signer, action: &str, body: Value) -> (u16, Value) {
    let path = format!("/v1/keys/ccsdemo/1/{action}");
    tokio::task::block_in_place(|| call(api, signer, "POST", &path, &body.to_string()))
}

fn get(api: SocketAddr, signer: &Signer, path: &str) -> (u16, Value) {
    tokio::task::block_in_place(|| call(api, signer, "GET", path, ""))
}

/// The secret of the one key of the key store in `dir`.
fn keys_secret(dir: &Path) -> String {
    let store = std::fs::read_to_string(dir.join("keys.toml")).unwrap();
    let line = store.lines().find(|l| l.starts_with("secret = ")).unwrap();
    line.trim_start_matches("secret = ")
        .trim_matches('"')
        .to_owned()
}

fn audit(dir: &Path) -> String {
    let out = bin()
        .args(["audit", "show", "--config"])
        .arg(dir.join("ccs-endpoint.toml"))
        .output()
        .unwrap();
    let verify = bin()
        .args(["audit", "verify", "--config"])
        .arg(dir.join("ccs-endpoint.toml"))
        .status()
        .unwrap();
    assert!(verify.success(), "the audit chain does not verify");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_through_an_independent_client_with_quorum_to_undo() {
    let keys = [Key::new("ccsdemo", 1)];
    let (server, signers) = server(
        &keys,
        &[
            ("soc-oncall", "status,disable,shutdown,renew,enable"),
            ("sec-lead", "status,enable"),
            ("viewer", "status"),
        ],
    )
    .await;
    let [soc, lead, viewer] = [&signers[0], &signers[1], &signers[2]];
    let api = server.api.unwrap();
    assert_eq!(poll(&server).await, (200, false));

    // Reading: every key, one key with its last poll, no approvals.
    let (status, list) = get(api, viewer, "/v1/keys");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["keys"][0]["instance"], "ccsdemo");
    assert_eq!(list["keys"][0]["state"], "active");
    let (status, key) = get(api, viewer, "/v1/keys/ccsdemo/1");
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["last_poll"]["status"], 200, "{key}");
    assert_eq!(
        get(api, viewer, "/v1/approvals").1,
        json!({"approvals": []})
    );

    // A signer without the action: 403, nothing changes.
    let (status, body) = post(api, viewer, "disable", json!({}));
    assert_eq!(status, 403, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("may not disable"));
    assert_eq!(poll(&server).await, (200, false));

    // The soft kill switch: one signer, served before the answer.
    let (status, body) = post(
        api,
        soc,
        "disable",
        json!({"reason": "INC-7: key suspected"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "applied");
    assert_eq!(body["replicas"], json!({"applied": 1, "total": 1}));
    assert_eq!(poll(&server).await.0, 404);

    // Undoing it takes two: the same signer twice counts once, under one approval id.
    let (status, first) = post(api, soc, "enable", json!({"reason": "false alarm"}));
    assert_eq!(status, 202, "{first}");
    assert_eq!(
        (first["approvals"].as_u64(), first["required"].as_u64()),
        (Some(1), Some(2))
    );
    let (status, again) = post(api, soc, "enable", json!({"reason": "false alarm"}));
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["approval"], first["approval"]);
    assert_eq!(again["approvals"], 1);
    let (_, pending) = get(api, viewer, "/v1/approvals");
    assert_eq!(
        pending["approvals"][0]["id"], first["approval"],
        "{pending}"
    );
    assert_eq!(pending["approvals"][0]["approvers"], json!(["soc-oncall"]));
    assert_eq!(poll(&server).await.0, 404, "one signer undid a kill switch");
    let (status, done) = post(api, lead, "enable", json!({"reason": "confirmed"}));
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["approvers"], json!(["soc-oncall", "sec-lead"]));
    assert_eq!(poll(&server).await, (200, false));
    assert_eq!(
        get(api, viewer, "/v1/approvals").1,
        json!({"approvals": []})
    );

    // The hard kill switch; a lapsed key is not renewed (that would be a one-signer un-kill).
    let (status, body) = post(api, soc, "shutdown", json!({"reason": "INC-8"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key"]["state"], "shut_down");
    assert_eq!(poll(&server).await, (200, true));
    let later = "2099-01-01T00:00:00Z";
    let (status, body) = post(api, soc, "renew", json!({"until": later}));
    assert_eq!(status, 409, "{body}");
    assert_eq!(poll(&server).await, (200, true));

    // Two signers bring it back under a lease; renew moves the lease forward, never back.
    let lease = "2098-01-01T00:00:00Z";
    assert_eq!(post(api, soc, "enable", json!({"until": lease})).0, 202);
    // Another `until` is another change: it does not complete the first.
    assert_eq!(post(api, lead, "enable", json!({"until": later})).0, 202);
    let (status, body) = post(api, lead, "enable", json!({"until": lease}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(time_of(&body["key"]["not_after"]), time_of(&json!(lease)));
    assert_eq!(poll(&server).await, (200, false));
    let (status, body) = post(
        api,
        soc,
        "renew",
        json!({"until": later, "reason": "weekly"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(time_of(&body["key"]["not_after"]), time_of(&json!(later)));
    assert_eq!(post(api, soc, "renew", json!({"until": lease})).0, 409);

    // Bad bodies and unknown keys, after the signature.
    let (status, body) = post(api, soc, "renew", json!({}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(api, soc, "disable", json!({"at": lease}));
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        tokio::task::block_in_place(|| call(api, soc, "POST", "/v1/keys/ccsdemo/9/disable", "{}"));
    assert_eq!(status, 404, "{body}");

    // Every change is in the chain, with its signers.
    let chain = audit(server.dir.path());
    for needle in [
        "soc-oncall+sec-lead",
        "INC-7: key suspected",
        "disable",
        "shutdown",
        "renew",
    ] {
        assert!(chain.contains(needle), "{needle} not in:\n{chain}");
    }
    let after_start: Vec<&str> = chain.lines().skip(1).collect();
    assert!(
        after_start.iter().all(|line| !line.contains(" file ")),
        "an API change was recorded as a file edit:\n{chain}"
    );
    assert!(
        after_start
            .iter()
            .any(|l| l.contains("soc-oncall+sec-lead enable") && l.contains("not_after 2098")),
        "the enable that lifted the shutdown is not named enable:\n{chain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_is_a_401_that_names_its_rule() {
    let keys = [Key::new("ccsdemo", 1)];
    let (server, signers) = server(&keys, &[("soc-oncall", "status,disable")]).await;
    let soc = &signers[0];
    let api = server.api.unwrap();
    // A retired signer and a lapsed one, beside it.
    let file = server.dir.path().join("signers.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    for (id, extra) in [
        ("retired", "active = false"),
        ("lapsed", "expires = \"2020-01-01T00:00:00Z\""),
    ] {
        text.push_str(&format!(
            "\n[[signer]]\nkey_id = \"{id}\"\nsecret = \"{}\"\nalgorithm = \"hmac-sha256\"\nactions = [\"status\"]\n{extra}\n",
            soc.secret
        ));
    }
    write_private(&file, &text);
    // Signers added are known once the file has settled (3 s).
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let as_signer = |key_id: &str| Signer {
        key_id: key_id.into(),
        ..soc.clone()
    };
    let list = |signer: &Signer| request(api, signer, "GET", "/v1/keys", "");
    let disable = |body: &str| request(api, soc, "POST", "/v1/keys/ccsdemo/1/disable", body);
    let wrong_secret = Signer {
        secret: support::api::add_signer(&server.dir.path().join("other.toml"), "x", "status")
            .secret,
        ..soc.clone()
    };
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut unsigned = list(soc);
    unsigned["unsigned"] = json!(true);
    cases.push((unsigned, "no signature"));
    cases.push((list(&as_signer("nobody")), "unknown key id \"nobody\""));
    cases.push((list(&as_signer("retired")), "is inactive"));
    cases.push((list(&as_signer("lapsed")), "expired on 2020-01-01"));
    cases.push((list(&wrong_secret), "bad signature"));
    let mut stale = list(soc);
    stale["created"] = json!(now() - 600);
    cases.push((stale, "clock skew"));
    let mut changed = disable("{\"reason\":\"routine\"}");
    changed["send_body"] = json!("{\"reason\":\"routine, and more\"}");
    cases.push((changed, "content-digest"));
    let mut uncovered = disable("{\"reason\":\"x\"}");
    uncovered["components"] = json!(["@method", "@target-uri"]);
    cases.push((uncovered, "does not cover content-digest"));
    let mut alg = list(soc);
    alg["alg"] = json!("hmac-sha512");
    cases.push((alg, "alg \"hmac-sha512\" is not the algorithm"));
    let mut replayed = list(soc);
    replayed["repeat"] = json!(2);
    cases.push((replayed, "already used"));

    let answers = tokio::task::block_in_place(|| {
        send(&cases.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>())
    });
    for ((case, expected), answers) in cases.iter().zip(&answers) {
        let (status, body) = answers.last().unwrap();
        assert_eq!(*status, 401, "{case}: {body}");
        assert_eq!(body["error"], "unauthorized");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
        assert!(!message.contains(&soc.secret), "a secret in {message}");
    }
    // The replay's first sending was accepted.
    assert_eq!(answers.last().unwrap()[0].0, 200);
    assert_eq!(
        poll(&server).await.0,
        200,
        "a refused request changed the key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signers_reload_and_a_broken_file_fails_closed() {
    let keys = [Key::new("ccsdemo", 1)];
    let (server, signers) = server(&keys, &[("soc-oncall", "status")]).await;
    let api = server.api.unwrap();
    let file = server.dir.path().join("signers.toml");
    let newcomer = add_signer(&file, "newcomer", "status");
    // A signer added is in force once the file has settled (3 s): un-kill settles.
    assert_eq!(
        get(api, &newcomer, "/v1/keys").0,
        401,
        "taken before it settled"
    );
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    assert_eq!(
        get(api, &newcomer, "/v1/keys").0,
        200,
        "a new signer was not picked up"
    );

    let good = std::fs::read_to_string(&file).unwrap();
    write_private(
        &file,
        &good.replace("algorithm = \"hmac-sha256\"", "algorithm = \"md5\""),
    );
    let (status, body) = get(api, &signers[0], "/v1/keys");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("algorithm"),
        "{body}"
    );
    let (_, metrics) = server.admin_get("/metrics").await;
    assert_eq!(support::sample(&metrics, "ccs_api_signers_ok"), Some(0.0));

    // Retiring a signer takes effect at once.
    write_private(
        &file,
        &good.replacen(
            "actions = [\"status\"]",
            "actions = [\"status\"]\nactive = false",
            1,
        ),
    );
    assert_eq!(get(api, &signers[0], "/v1/keys").0, 401);
    // The file was broken before: what it gives back (the newcomer) settles first.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    assert_eq!(get(api, &newcomer, "/v1/keys").0, 200);
    let (_, metrics) = server.admin_get("/metrics").await;
    assert_eq!(support::sample(&metrics, "ccs_api_signers_ok"), Some(1.0));
    assert_eq!(
        support::sample(
            &metrics,
            "ccs_api_requests_total{action=\"status\",status=\"401\"}"
        ),
        // The newcomer before its file settled, and the retired signer.
        Some(2.0),
        "{metrics}"
    );
    // Every API series the shipped alert rules query is one this server exports.
    support::assert_exported(&metrics, "ccs_api_");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_port_changes_nothing_whatever_the_method() {
    let keys = [Key::new("ccsdemo", 1)];
    let (server, signers) = server(&keys, &[("soc-oncall", "status,disable")]).await;
    // A request the API would take, sent to the service port instead.
    let service = server.addr;
    let case = request(
        service,
        &signers[0],
        "POST",
        "/v1/keys/ccsdemo/1/disable",
        "{}",
    );
    let answers = tokio::task::block_in_place(|| send(&[case]));
    assert_eq!(answers[0][0].0, 400, "{:?}", answers[0][0]);
    // §2: the path is judged first (400 for any but /kek/…), then the method (405).
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for (path, status) in [
            (KEK, 405),
            ("/v1/keys/ccsdemo/1/disable", 400),
            ("/v1/keys", 400),
        ] {
            let reply = server
                .send(
                    &rustls::version::TLS13,
                    method,
                    path,
                    &[("Content-Length", "0")],
                )
                .await;
            assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        }
    }
    assert_eq!(poll(&server).await, (200, false));
    // And the API takes no GET for a change, no POST for a read.
    let api = server.api.unwrap();
    assert_eq!(get(api, &signers[0], "/v1/keys/ccsdemo/1/disable").0, 405);
    let (status, _) =
        tokio::task::block_in_place(|| call(api, &signers[0], "POST", "/v1/keys", "{}"));
    assert_eq!(status, 405);
}

/// `ccs-endpoint api …` with the secret in a file, as a runbook runs it.
fn cli(url: &str, signer: &Signer, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let secret_file = dir.join(format!("{}.secret", signer.key_id));
    write_private(&secret_file, &format!("{}\n", signer.secret));
    let out = bin()
        .arg("api")
        .args(args)
        .args(["--url", url, "--key-id", &signer.key_id, "--secret-file"])
        .arg(&secret_file)
        .arg("--cacert")
        .arg(dir.join("server-ca.pem"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_operators_client_throws_and_undoes_the_switch_on_a_real_process() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status,disable,enable");
    let lead = add_signer(&file, "sec-lead", "status,enable");
    std::fs::write(
        dir.path().join("server-ca.pem"),
        support::pki().server_ca.cert_pem(),
    )
    .unwrap();
    let api_port = free_port();
    let keys = [Key::new("ccsdemo", 1)];
    let (mut server, _port) = spawn_configured(
        dir.path(),
        &keys,
        &api_config(&format!("127.0.0.1:{api_port}")),
    );
    let url = format!("https://127.0.0.1:{api_port}");
    let key = ["--instance", "ccsdemo", "--key", "1"];
    let (code, out, err) = cli(
        &url,
        &soc,
        dir.path(),
        &[&["disable"][..], &key, &["--reason", "INC-9"]].concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"applied\""), "{out}");
    let (code, out, err) = cli(&url, &soc, dir.path(), &[&["enable"][..], &key].concat());
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("pending"), "{err}");
    let (code, out, _) = cli(&url, &soc, dir.path(), &["approvals"]);
    assert_eq!(code, 0);
    assert!(out.contains("soc-oncall"), "{out}");
    let (code, out, err) = cli(&url, &lead, dir.path(), &[&["enable"][..], &key].concat());
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = cli(&url, &lead, dir.path(), &[&["status"][..], &key].concat());
    assert_eq!(code, 0);
    assert!(out.contains("\"active\""), "{out}");
    // Refused: exit 1 with the server's reason.
    let (code, _, err) = cli(&url, &lead, dir.path(), &[&["disable"][..], &key].concat());
    assert_eq!(code, 1);
    assert!(
        err.contains("403") && err.contains("may not disable"),
        "{err}"
    );
    server.terminate();
    let log = server.output();
    assert!(log.contains("admin API listener"), "{log}");
    assert!(log.contains("signer=\"soc-oncall\""), "{log}");
    for secret in [&soc.secret, &lead.secret] {
        assert!(
            !log.contains(secret.as_str()),
            "a signer's secret is in the log"
        );
    }
    for form in support::process::leak_forms(&keys[0].secret) {
        assert!(!log.contains(&form), "the key's secret is in the log");
    }
}

#[test]
fn check_judges_the_signers_file_and_signers_add_keeps_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status,disable");
    let config = support::write_config(
        dir.path(),
        &[Key::new("ccsdemo", 1)],
        &api_config("127.0.0.1:9443"),
    );
    let check = || {
        bin()
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 signers in") && text.contains("soc-oncall"),
        "{text}"
    );
    assert!(
        text.contains("quorum disable 1 shutdown 1 renew 1 enable 2 export 2"),
        "{text}"
    );

    // The same key id twice is refused, and the file is left as it was.
    let before = std::fs::read_to_string(&file).unwrap();
    let again = bin()
        .args(["signers", "add", "--file"])
        .arg(&file)
        .args(["--key-id", "soc-oncall", "--actions", "status"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    assert!(
        again.stdout.is_empty(),
        "a secret was printed for a refused signer"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A broken entry: `check` names the file, the entry and the field, and never the secret.
    write_private(&file, &before.replace("hmac-sha256", "hmac-md5"));
    let out = check();
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        error.contains("signers.toml") && error.contains("entry 1") && error.contains("algorithm"),
        "{error}"
    );
    assert!(!error.contains(&soc.secret), "{error}");
    // Open to others: refused like the key store.
    write_private(&file, &before);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_api_runbooks_run_as_written_by_two_signers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let soc = add_signer(
        &file,
        "soc-oncall",
        "status,disable,shutdown,renew,enable,export",
    );
    let lead = add_signer(&file, "sec-lead", "status,enable,export");
    let escrow =
        ccs_endpoint::tools::pki::ca("escrow", ccs_endpoint::tools::pki::KeyKind::Rsa2048).unwrap();
    std::fs::write(dir.path().join("escrow.crt"), escrow.cert_pem()).unwrap();
    write_private(&dir.path().join("escrow.key"), &escrow.key_pem());
    let escrow_sha = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        escrow.cert_der(),
    ));
    for signer in [&soc, &lead] {
        write_private(
            &dir.path().join(format!("{}.secret", signer.key_id)),
            &signer.secret,
        );
    }
    let ca = dir.path().join("server-ca.pem");
    std::fs::write(&ca, support::pki().server_ca.cert_pem()).unwrap();
    let api_port = free_port();
    let (mut server, _) = spawn_configured(
        dir.path(),
        &[Key::new("ccsdemo", 1)],
        &format!(
            "{}export_to = [\"escrow.crt\"]\n",
            api_config(&format!("127.0.0.1:{api_port}"))
        ),
    );
    let lines = support::runbook("api");
    assert!(lines.len() >= 8, "{lines:?}");
    let home = format!("{}/", dir.path().display());
    for line in lines {
        let mut cmd = bin();
        cmd.args(
            line.args
                .iter()
                .map(|a| a.replace("<escrow-sha256>", &escrow_sha)),
        )
        .current_dir(dir.path())
        .env("CCS_API_URL", format!("https://127.0.0.1:{api_port}"))
        .env("CCS_API_CACERT", &ca)
        .env("CCS_API_KEY_ID", "soc-oncall")
        .env("CCS_API_SECRET_FILE", dir.path().join("soc-oncall.secret"));
        for (name, value) in &line.env {
            cmd.env(name, value.replace("~/.ccs/", &home));
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(line.code),
            "ccs-endpoint {}: {}{}",
            line.args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.terminate();
    // The escrow record the runbook wrote restores the key.
    let restored = bin()
        .args([
            "keys",
            "import",
            "--from-escrow",
            "ccsdemo-1.escrow.json",
            "--escrow-key",
            "escrow.key",
        ])
        .args(["--file", "restored.toml", "--create"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let restored = std::fs::read_to_string(dir.path().join("restored.toml")).unwrap();
    assert!(
        restored.contains(&keys_secret(dir.path())),
        "the restored key is another"
    );
    let chain = audit(dir.path());
    assert!(chain.contains("soc-oncall+sec-lead enable"), "{chain}");
    assert!(chain.contains("soc-oncall+sec-lead export"), "{chain}");
    assert!(chain.contains("INC-1235-resolved"), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_through_the_api_takes_two_signers_and_a_configured_certificate() {
    use base64::Engine;
    use ccs_endpoint::tools::pki::{self, KeyKind};
    let escrow = pki::ca("escrow", KeyKind::Rsa2048).unwrap();
    let sha = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        escrow.cert_der(),
    ));
    let keys = [Key::new("ccsdemo", 1)];
    let made = std::cell::RefCell::new(Vec::new());
    let config = format!(
        "{}export_to = [\"escrow.crt\"]\n",
        api_config("127.0.0.1:0")
    );
    let server = TestServer::start_with_files(&keys, &config, |dir| {
        std::fs::write(dir.join("escrow.crt"), escrow.cert_pem()).unwrap();
        for (id, actions) in [
            ("soc-oncall", "status,export"),
            ("sec-lead", "export"),
            ("viewer", "status"),
        ] {
            made.borrow_mut()
                .push(add_signer(&dir.join("signers.toml"), id, actions));
        }
    })
    .await;
    let signers = made.into_inner();
    let [soc, lead, viewer] = [&signers[0], &signers[1], &signers[2]];
    let api = server.api.unwrap();
    let export = |signer: &Signer, sha: &str| {
        post(
            api,
            signer,
            "export",
            json!({"certificate_sha256": sha, "reason": "escrow INC-3"}),
        )
    };

    assert_eq!(export(viewer, &sha).0, 403, "a signer without export");
    let (status, body) = export(soc, &"ab".repeat(32));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("export_to"),
        "{body}"
    );
    let (status, first) = export(soc, &sha);
    assert_eq!(status, 202, "{first}");
    assert!(first.get("record").is_none(), "one signer got the key");
    let (status, done) = export(lead, &sha);
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["approvers"], json!(["soc-oncall", "sec-lead"]));
    let record = &done["record"];
    assert_eq!(
        record["certificate_sha256"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase(),
        sha
    );
    assert_eq!(
        (record["padding"].as_str(), record["plaintext"].as_str()),
        (Some("oaep-sha256"), Some("raw"))
    );
    // OpenSSL unwraps it with the escrow key to the key's secret.
    let dir = server.dir.path();
    write_private(&dir.join("escrow.key"), &escrow.key_pem());
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(record["wrappedKey"].as_str().unwrap())
        .unwrap();
    let unwrapped = support::openssl_unwrap(&dir.join("escrow.key"), &wrapped, dir);
    assert_eq!(hex::encode(unwrapped), keys[0].secret.to_ascii_lowercase());
    let chain = audit(dir);
    assert!(chain.contains("soc-oncall+sec-lead export"), "{chain}");
    assert!(
        chain.contains(&format!("wrapped to escrow:{sha}")),
        "{chain}"
    );
}
