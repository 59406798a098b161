//! contract §7 on reload: a key store that fails to load answers 503 for its keys (never a 404
//! it did not say, never a 200 from the state the operator tried to replace), applies every
//! withdrawal it can read, is alertable, and recovers by itself; a slow non-atomic rewrite is
//! never loaded half-written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use support::*;

fn entry(instance: &str, secret: &str, extra: &str) -> String {
    format!("[[key]]\ninstance = \"{instance}\"\nkey_id = 1\nsecret = \"{secret}\"\n{extra}\n")
}

async fn readyz(server: &TestServer) -> (u16, String) {
    server.admin_get("/readyz").await
}

async fn keys_gauge(server: &TestServer) -> Option<f64> {
    let (_, m) = server.admin_get("/metrics").await;
    sample(&m, "ccs_last_reload_successful{component=\"keys\"}")
}

/// A poll for `instance`'s key 1 with a certificate from root A, waiting (up to 15 s) for the
/// answer `want`.
async fn becomes(server: &TestServer, instance: &str, want: u16) -> Reply {
    poll_until(server, &db_cert(instance), instance, want).await
}

/// A poll for `instance`'s key 1 with `cert`, repeated until it answers `want` (15 s at most).
async fn poll_until(
    server: &TestServer,
    cert: &ccs_endpoint::tools::pki::Issued,
    instance: &str,
    want: u16,
) -> Reply {
    let h = header(cert);
    let started = Instant::now();
    loop {
        let reply = server.get(&format!("/kek/{instance}/1"), Some(&h)).await;
        if reply.status == want {
            return reply;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{instance}: still {} ({}) instead of {want}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_store_applies_what_it_withdraws_and_withholds_the_rest() {
    let (a, b) = (random_secret_hex(), random_secret_hex());
    let server = TestServer::start(&[Key::new("alpha", 1), Key::new("beta", 1)], "").await;
    let keys = server.dir.path().join("keys.toml");
    let good = |a_extra: &str, b_extra: &str| {
        format!(
            "{}{}",
            entry("alpha", &a, a_extra),
            entry("beta", &b, b_extra)
        )
    };
    replace_file(&keys, &good("", ""));
    becomes(&server, "alpha", 200).await;
    assert_eq!(keys_gauge(&server).await, Some(1.0));
    let (_, m) = server.admin_get("/metrics").await;
    assert_eq!(
        sample(
            &m,
            "ccs_reloads_total{component=\"keys\",result=\"failed\"}"
        ),
        Some(0.0),
        "the failed series exists before the first failure"
    );

    // A hand-typed `disable = true` is refused as a field, but read as the withdrawal it is.
    replace_file(&keys, &good("disable = true", ""));
    let reply = becomes(&server, "alpha", 404).await;
    assert!(reply.error().starts_with("No active key"), "{}", reply.body);
    let reply = becomes(&server, "beta", 503).await;
    assert!(reply.json()["errorId"].is_string(), "{}", reply.body);
    assert!(!reply.body.contains(&b), "a 503 never carries the secret");
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("keys.toml") && body.contains("`disable`"),
        "{body}"
    );
    assert_eq!(keys_gauge(&server).await, Some(0.0));

    // A good file again: both served, ready.
    replace_file(&keys, &good("", ""));
    becomes(&server, "alpha", 200).await;
    becomes(&server, "beta", 200).await;
    assert_eq!(readyz(&server).await.0, 200);
    assert_eq!(keys_gauge(&server).await, Some(1.0));

    // A disabling edit saved with mode 644 (refused: others can read it) still disables.
    std::fs::write(&keys, good("", "disabled = true")).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    becomes(&server, "beta", 404).await;
    becomes(&server, "alpha", 503).await;

    // Removing an entry in a refused file withdraws it; a past not_after is the hard kill.
    std::fs::write(
        &keys,
        entry("alpha", &a, "not_after = \"2020-01-01T00:00:00Z\""),
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    becomes(&server, "beta", 404).await;
    let reply = becomes(&server, "alpha", 200).await;
    assert_eq!(reply.json()["validUntil"], "2020-01-01T00:00:00.000Z");

    // A file that cannot be read at all: the last good state's withdrawals stay (beta is
    // disabled in the good file before it), everything else answers 503.
    replace_file(&keys, &good("", "disabled = true"));
    wait_until("the good file", || async { readyz(&server).await.0 == 200 }).await;
    becomes(&server, "beta", 404).await;
    becomes(&server, "alpha", 200).await;
    replace_file(&keys, "[[key]\ninstance = ");
    becomes(&server, "alpha", 503).await;
    assert_eq!(becomes(&server, "beta", 404).await.status, 404);
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503);
    assert!(body.contains("not valid TOML"), "{body}");

    // And a vanished file.
    std::fs::remove_file(&keys).unwrap();
    server.reloader.reload(true, "test");
    becomes(&server, "alpha", 503).await;
    replace_file(&keys, &good("", ""));
    becomes(&server, "alpha", 200).await;
    becomes(&server, "beta", 200).await;
    assert_eq!(readyz(&server).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_non_atomic_rewrite_never_serves_a_disabled_key() {
    let secret = random_secret_hex();
    let server = TestServer::start(&[Key::new("ccsdemo", 1).with("disabled = true")], "").await;
    let keys = server.dir.path().join("keys.toml");
    becomes(&server, "ccsdemo", 404).await;
    // The same key, still disabled, rewritten in place in small pieces: every prefix that ends
    // after the secret line is a valid store in which the key is enabled.
    let text = format!(
        "{}{}disabled = true\n",
        entry("ccsdemo", &secret, ""),
        "# a comment that takes a while to write\n".repeat(8)
    );
    let writer = {
        let keys = keys.clone();
        let text = text.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&keys)
                .unwrap();
            for chunk in text.as_bytes().chunks(24) {
                file.write_all(chunk).unwrap();
                file.flush().unwrap();
                std::thread::sleep(Duration::from_millis(60));
            }
        })
    };
    let h = header(&db_cert("ccsdemo"));
    let mut statuses = std::collections::BTreeMap::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let status = server.get("/kek/ccsdemo/1", Some(&h)).await.status;
        *statuses.entry(status).or_insert(0) += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.await.unwrap();
    assert_eq!(
        statuses.get(&200),
        None,
        "served during the rewrite: {statuses:?}"
    );
    becomes(&server, "ccsdemo", 404).await;
}

/// A poll for ccsdemo/1 with a certificate from `root`, waiting for the answer `want`.
async fn cert_becomes(
    server: &TestServer,
    root: &ccs_endpoint::tools::pki::Issued,
    want: u16,
) -> Reply {
    let cert = ccs_endpoint::tools::pki::database(root, "ccsdemo").unwrap();
    poll_until(server, &cert, "ccsdemo", want).await
}

async fn trust_gauge(server: &TestServer) -> Option<f64> {
    let (_, m) = server.admin_get("/metrics").await;
    sample(&m, "ccs_last_reload_successful{component=\"trust\"}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_trust_root_is_withdrawn_without_a_restart() {
    let p = pki();
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    let dir = server.dir.path();
    cert_becomes(&server, &p.root_a, 200).await;
    cert_becomes(&server, &p.root_b, 200).await;

    // Emptied: root B's certificates are refused at once; root A's still served.
    std::fs::write(dir.join("root-b.pem"), "").unwrap();
    let reply = cert_becomes(&server, &p.root_b, 401).await;
    assert!(
        reply
            .error()
            .contains("not issued by a configured trust root"),
        "{}",
        reply.body
    );
    cert_becomes(&server, &p.root_a, 200).await;
    assert_eq!(
        trust_gauge(&server).await,
        Some(0.0),
        "an emptied root file is alertable"
    );
    // Back, then deleted.
    std::fs::write(
        dir.join("root-b.pem"),
        format!("{}{}", p.root_b.cert_pem(), p.intermediate.cert_pem()),
    )
    .unwrap();
    cert_becomes(&server, &p.root_b, 200).await;
    assert_eq!(trust_gauge(&server).await, Some(1.0));
    std::fs::remove_file(dir.join("root-b.pem")).unwrap();
    cert_becomes(&server, &p.root_b, 401).await;

    // A root file that is there but cannot be read: its roots are in doubt (503), not served.
    std::fs::write(
        dir.join("root-a.pem"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    let reply = cert_becomes(&server, &p.root_a, 503).await;
    assert!(reply.json()["errorId"].is_string(), "{}", reply.body);
    let (status, body) = server.admin_get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("root-a.pem"), "{body}");
    std::fs::write(dir.join("root-a.pem"), p.root_a.cert_pem()).unwrap();
    cert_becomes(&server, &p.root_a, 200).await;
    assert_eq!(server.admin_get("/readyz").await.0, 200);

    // Dropped from [trust] roots, then SIGHUP: withdrawn (root B's file is back, unlisted).
    std::fs::write(
        dir.join("root-b.pem"),
        format!("{}{}", p.root_b.cert_pem(), p.intermediate.cert_pem()),
    )
    .unwrap();
    server.reloader.reload(true, "sighup");
    cert_becomes(&server, &p.root_b, 200).await;
    let config = dir.join("ccs-endpoint.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "roots = [\"root-a.pem\", \"root-b.pem\"]",
            "roots = [\"root-a.pem\"]",
        ),
    )
    .unwrap();
    server.reloader.reload(true, "sighup");
    cert_becomes(&server, &p.root_b, 401).await;
    cert_becomes(&server, &p.root_a, 200).await;

    // A configuration that no longer parses on SIGHUP: the roots cannot be known, so 503.
    std::fs::write(&config, format!("{text}\n[trust\n")).unwrap();
    server.reloader.reload(true, "sighup");
    cert_becomes(&server, &p.root_a, 503).await;
    assert_eq!(server.admin_get("/readyz").await.0, 503);
    std::fs::write(&config, &text).unwrap();
    server.reloader.reload(true, "sighup");
    cert_becomes(&server, &p.root_a, 200).await;
    cert_becomes(&server, &p.root_b, 200).await;
    assert_eq!(server.admin_get("/readyz").await.0, 200);
}

#[test]
fn a_weak_rsa_root_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], "");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-subj",
            "/CN=weak root",
        ])
        .args([
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ])
        .arg("-keyout")
        .arg(dir.path().join("weak.key"))
        .arg("-out")
        .arg(dir.path().join("root-b.pem"))
        .output()
        .unwrap_or_else(|e| panic!("openssl (Debian package openssl) is needed: {e}"));
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let error = ccs_endpoint::runtime::Loaded::from_file(&config)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("root-b.pem") && error.contains("RSA key of 1024 bits"),
        "{error}"
    );
}
