//! The operator toolkit as people run it: `init`, `keys …`, `probe`, `wrap`, `inspect`, each as
//! a process, failure paths included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use ccs_endpoint::secret::Secret;
use support::process::*;
use support::*;

fn run(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).output().unwrap()
}

fn run_with_stdin(args: &[&str], cwd: &Path, stdin: &str) -> Output {
    let mut cmd = bin();
    cmd.args(args).current_dir(cwd);
    output_with_stdin(cmd, stdin)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `keys …` on the skeleton's key store.
fn keys(args: &[&str], cwd: &Path) -> Output {
    run(
        &[&["keys"], args, &["--file", "config/keys.toml"]].concat(),
        cwd,
    )
}

/// `keys …` on the skeleton's key store, with `stdin`.
fn keys_with_stdin(args: &[&str], cwd: &Path, stdin: &str) -> Output {
    run_with_stdin(
        &[&["keys"], args, &["--file", "config/keys.toml"]].concat(),
        cwd,
        stdin,
    )
}

/// The secrets of a key-store file, by (instance, key_id).
fn secrets(path: &Path) -> Vec<(String, u64, String)> {
    let table: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    table["key"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["instance"].as_str().unwrap().to_owned(),
                k["key_id"].as_integer().unwrap() as u64,
                k["secret"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn init_then_every_keys_command() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(&["init", "--dir", "."], d);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Next steps"));
    let store = d.join("config/keys.toml");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o600);
    // init never overwrites.
    let again = run(&["init", "--dir", "."], d);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("exists already"), "{}", text(&again));
    // The skeleton's configuration names certificates that are not there yet: check says which.
    let check = run(&["check", "--config", "config/ccs-endpoint.toml"], d);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check).contains("server.crt"), "{}", text(&check));

    // A --file that does not exist (a typo) is refused unless --create says to start one.
    let typo = [
        "keys",
        "generate",
        "--instance",
        "ccsdemo",
        "--key-id",
        "1",
        "--file",
        "config/key.toml",
    ];
    let refused = run(&typo, d);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("--create"), "{}", text(&refused));
    assert!(!d.join("config/key.toml").exists());
    let created = run(&[&typo[..], &["--create"]].concat(), d);
    assert!(created.status.success(), "{}", text(&created));
    assert_eq!(mode(&d.join("config/key.toml")), 0o600);

    // generate: KCV printed, secret not; file mode 600; header comments kept.
    let out = keys(&["generate", "--instance", "ccsdemo", "--key-id", "1"], d);
    assert!(out.status.success(), "{}", text(&out));
    let [(_, _, secret)] = &secrets(&store)[..] else {
        panic!("one key expected")
    };
    let kcv = Secret::from_hex(secret).unwrap().kcv().to_string();
    assert!(text(&out).contains(&kcv) && !text(&out).contains(secret.as_str()));
    assert_eq!(mode(&store), 0o600);
    assert!(std::fs::read_to_string(&store)
        .unwrap()
        .starts_with("# ccs-endpoint key store"));

    // Generating over a live key is refused; --force replaces it and says so.
    let again = keys(&["generate", "--instance", "ccsdemo", "--key-id", "1"], d);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("--force"), "{}", text(&again));
    assert!(
        &secrets(&store)[0].2 == secret,
        "a refused generate changed the key"
    );
    // --force alone is not enough, nor a KCV that is not the current key's: the operator
    // types the KCV of the key whose data is given up.
    let replace = |confirm: &[&str]| {
        keys(
            &[
                &[
                    "generate",
                    "--instance",
                    "ccsdemo",
                    "--key-id",
                    "1",
                    "--force",
                ][..],
                confirm,
            ]
            .concat(),
            d,
        )
    };
    let unconfirmed = replace(&[]);
    assert_eq!(unconfirmed.status.code(), Some(2), "{}", text(&unconfirmed));
    assert!(text(&unconfirmed).contains("--confirm-kcv"));
    let wrong = replace(&["--confirm-kcv", "000000"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(text(&wrong).contains("keys list"), "{}", text(&wrong));
    assert!(
        &secrets(&store)[0].2 == secret,
        "a refused replacement changed the key"
    );
    let forced = replace(&["--confirm-kcv", &kcv.to_lowercase()]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(
        text(&forced).contains(&format!("old kcv {kcv}")),
        "{}",
        text(&forced)
    );
    let secret = secrets(&store)[0].2.clone();

    // import reads standard input only; bad input is refused and changes nothing.
    let imported = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
    let out = keys_with_stdin(
        &["import", "--instance", "other", "--key-id", "2"],
        d,
        &format!("{imported}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&Secret::from_hex(imported).unwrap().kcv().to_string()));
    for bad in ["", "zz", &imported[..40]] {
        let out = keys_with_stdin(&["import", "--instance", "third", "--key-id", "1"], d, bad);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(text(&out).contains("standard input"), "{}", text(&out));
    }
    let argv = run(
        &[
            "keys",
            "import",
            "--instance",
            "x",
            "--key-id",
            "1",
            "--secret",
            imported,
        ],
        d,
    );
    assert_eq!(argv.status.code(), Some(2), "no secret on the command line");
    assert_eq!(secrets(&store).len(), 2);

    // The same secret under a second instance: stored, with a warning naming both.
    let twice = keys_with_stdin(
        &["import", "--instance", "twin", "--key-id", "1"],
        d,
        &format!("{imported}\n"),
    );
    assert!(twice.status.success(), "{}", text(&twice));
    assert!(
        text(&twice).contains("warning:") && text(&twice).contains("other key_id 2, twin key_id 1"),
        "{}",
        text(&twice)
    );
    let removed = std::fs::read_to_string(&store).unwrap();
    let mut doc: Vec<&str> = removed.split("[[key]]").collect();
    doc.retain(|entry| !entry.contains("\"twin\""));
    write_private(&store, &doc.join("[[key]]"));

    // list, disable, enable, shutdown: each says what the next poll gets.
    let list = keys(&["list"], d);
    let listed = text(&list);
    assert!(
        listed.contains("ccsdemo") && listed.contains("other") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&secret) && !listed.to_lowercase().contains(&imported.to_lowercase()));
    let out = keys(&["disable", "--instance", "other", "--key-id", "2"], d);
    assert!(
        text(&out).contains("Next poll: 404") && text(&out).contains("no restart"),
        "{}",
        text(&out)
    );
    assert!(text(&keys(&["list"], d)).contains("disabled (404)"));
    let out = keys(&["enable", "--instance", "other", "--key-id", "2"], d);
    assert!(text(&out).contains("Next poll: 200"), "{}", text(&out));
    let out = keys(&["shutdown", "--instance", "ccsdemo"], d);
    assert!(
        text(&out).contains("SHUT DOWN") && text(&out).contains("(past)"),
        "{}",
        text(&out)
    );
    assert!(text(&keys(&["list"], d)).contains("expired at"));
    let listed: serde_json::Value =
        serde_json::from_slice(&keys(&["list", "--json"], d).stdout).unwrap();
    let rows = listed.as_array().unwrap();
    let ccsdemo = rows.iter().find(|r| r["instance"] == "ccsdemo").unwrap();
    assert_eq!(ccsdemo["state"], "expired");
    let current_kcv = Secret::from_hex(&secret).unwrap().kcv().to_string();
    assert_eq!(ccsdemo["kcv"], current_kcv.as_str());
    assert_eq!(ccsdemo["valid_until"], ccsdemo["not_after"], "{ccsdemo}");
    let other = rows.iter().find(|r| r["instance"] == "other").unwrap();
    assert_eq!(other["state"], "active");
    assert!(other["valid_until"].is_string() && other.get("token").is_none());
    // A second shutdown never moves the first one's moment later (one rule with the fleet
    // and the API: the hard kill switch only comes closer).
    let not_after = |d: &std::path::Path| {
        let listed: serde_json::Value =
            serde_json::from_slice(&keys(&["list", "--json"], d).stdout).unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance"] == "ccsdemo")
            .unwrap()["not_after"]
            .clone()
    };
    let first = not_after(d);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(keys(&["shutdown", "--instance", "ccsdemo"], d)
        .status
        .success());
    assert_eq!(
        not_after(d),
        first,
        "a shutdown moved a past not_after later"
    );
    // Each kill switch has its undo: `enable` on a shut-down key says it is still down...
    let out = keys(&["enable", "--instance", "ccsdemo", "--key-id", "1"], d);
    assert!(
        text(&out).contains("SHUT DOWN") && text(&out).contains("keys restore"),
        "{}",
        text(&out)
    );
    // ... `restore` brings validUntil back, and refuses a not_after that has passed.
    let past = keys(
        &[
            "restore",
            "--instance",
            "ccsdemo",
            "--not-after",
            "2020-01-01T00:00:00Z",
        ],
        d,
    );
    assert_eq!(past.status.code(), Some(1), "{}", text(&past));
    assert!(text(&past).contains("not a restore"), "{}", text(&past));
    let out = keys(&["restore", "--instance", "ccsdemo"], d);
    assert!(
        text(&out).contains("RESTORED") && text(&out).contains("Next poll: 200"),
        "{}",
        text(&out)
    );
    let listed = text(&keys(&["list"], d));
    assert!(!listed.contains("expired at"), "{listed}");
    let later = keys(
        &[
            "restore",
            "--instance",
            "ccsdemo",
            "--key-id",
            "1",
            "--not-after",
            "2999-01-01T00:00:00Z",
        ],
        d,
    );
    assert!(later.status.success(), "{}", text(&later));
    assert!(text(&keys(&["list"], d)).contains("active until 2999-01-01"));
    let missing = keys(&["disable", "--instance", "nobody", "--key-id", "1"], d);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).contains("no key for instance \"nobody\""),
        "{}",
        text(&missing)
    );
    // The store is still what check and the server accept.
    assert_eq!(secrets(&store).len(), 2);
}

/// Writes the database certificate and key, the server's CA, and returns their paths.
fn write_client(dir: &Path, instance: &str) -> (String, String, String) {
    let cert = db_cert(instance);
    std::fs::write(dir.join("db.crt"), cert.cert_pem()).unwrap();
    write_private(&dir.join("db.key"), &cert.key_pem());
    std::fs::write(dir.join("server-ca.pem"), pki().server_ca.cert_pem()).unwrap();
    ("db.crt".into(), "db.key".into(), "server-ca.pem".into())
}

#[test]
fn probe_against_the_dev_server_and_every_way_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut server, port) = spawn_dev(d, "info");

    // The banner's probe command, as pasted (with this build's binary).
    let output = server.output();
    let probe_line = output
        .lines()
        .skip_while(|l| !l.contains("Poll it as the SaaS would"))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let args: Vec<&str> = probe_line.split_whitespace().collect();
    // The binary as it was started (here the test build's path), so the command runs as pasted.
    assert_eq!(args[0], env!("CARGO_BIN_EXE_ccs-endpoint"));
    let out = run(&args[1..], d);
    assert!(out.status.success(), "{}", text(&out));
    let keys = d.join("dev/keys.toml");
    let kcv = Secret::from_hex(&secrets(&keys)[0].2)
        .unwrap()
        .kcv()
        .to_string();
    let report = text(&out);
    assert!(report.contains(&format!("kcv         {kcv}")), "{report}");
    assert!(
        report.contains("keyId       1") && report.contains("left)"),
        "{report}"
    );

    let url = format!("https://localhost:{port}/kek/ccsdemo/1");
    let base = [
        "probe",
        &url,
        "--cert",
        "dev/client.crt",
        "--key",
        "dev/client.key",
        "--cacert",
        "dev/ca.crt",
    ];
    assert!(run(
        &[&base[..], &["--expect-kcv", &kcv.to_lowercase()]].concat(),
        d
    )
    .status
    .success());

    let other = db_cert("ccsdemo");
    write_private(&d.join("other.key"), &other.key_pem());
    let unreachable = format!("https://localhost:{}/kek/ccsdemo/1", free_port());
    let wrong_instance = format!("https://localhost:{port}/kek/nosuch/1");
    let bad_path = format!("https://localhost:{port}/kek/a/");
    // Each way a probe fails: its message, and its outcome's exit code.
    let rows: Vec<(Vec<&str>, &str, i32)> = vec![
        (
            [&base[..], &["--expect-kcv", "000000"]].concat(),
            "KCV mismatch",
            7,
        ),
        (
            [&base[..], &["--padding", "oaep-sha256"]].concat(),
            "padding mismatch",
            7,
        ),
        (
            [&base[..], &["--plaintext", "raw"]].concat(),
            "plaintext mismatch",
            7,
        ),
        (
            vec![
                "probe",
                &wrong_instance,
                "--cert",
                "dev/client.crt",
                "--key",
                "dev/client.key",
                "--cacert",
                "dev/ca.crt",
            ],
            "answered 401",
            5,
        ),
        (
            vec![
                "probe",
                &unreachable,
                "--cert",
                "dev/client.crt",
                "--key",
                "dev/client.key",
                "--insecure",
            ],
            "cannot connect",
            8,
        ),
        (
            vec![
                "probe",
                &url,
                "--cert",
                "dev/client.crt",
                "--key",
                "other.key",
                "--cacert",
                "dev/ca.crt",
            ],
            "is not the private key of dev/client.crt",
            1,
        ),
        (
            vec![
                "probe",
                &url,
                "--cert",
                "dev/client.crt",
                "--key",
                "dev/client.key",
            ],
            "--cacert",
            8,
        ),
        (
            vec![
                "probe",
                "http://localhost/kek/a/1",
                "--cert",
                "dev/client.crt",
                "--key",
                "dev/client.key",
            ],
            "https://",
            1,
        ),
        (
            vec![
                "probe",
                &bad_path,
                "--cert",
                "dev/client.crt",
                "--key",
                "dev/client.key",
            ],
            "/kek/<instance>/<key_id>",
            1,
        ),
    ];
    for (args, want, code) in rows {
        let out = run(&args, d);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(want),
            "{args:?}: want {want:?} in {}",
            text(&out)
        );
    }
    // --json: one object naming the outcome.
    let out = run(&[&base[..], &["--json"]].concat(), d);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "ok");
    assert_eq!(report["kcv"], kcv.as_str());
    assert!(report["secondsLeft"].as_i64().unwrap() > 0);
    // The hard kill switch: the key still unwraps, but probe says KILLED and exits 3.
    let shutdown = [
        "keys",
        "shutdown",
        "--instance",
        "ccsdemo",
        "--file",
        "dev/keys.toml",
    ];
    assert!(run(&shutdown, d).status.success());
    let start = std::time::Instant::now();
    let killed = loop {
        let out = run(&[&base[..], &["--json"]].concat(), d);
        if out.status.code() == Some(3) {
            break out;
        }
        assert!(
            start.elapsed().as_secs() < 15,
            "the shut-down key is still served as ok: {}",
            text(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let report: serde_json::Value = serde_json::from_slice(&killed.stdout).unwrap();
    assert_eq!(report["outcome"], "killed");
    assert!(report["secondsLeft"].as_i64().unwrap() <= 0);
    let out = run(&base, d);
    assert!(text(&out).contains("KILLED"), "{}", text(&out));
    let restore = [
        "keys",
        "restore",
        "--instance",
        "ccsdemo",
        "--file",
        "dev/keys.toml",
    ];
    assert!(run(&restore, d).status.success());
    // A disabled key: 404, said plainly, exit 4.
    let out = run(
        &[&[
            "keys",
            "disable",
            "--instance",
            "ccsdemo",
            "--key-id",
            "1",
            "--file",
            "dev/keys.toml",
        ][..]]
        .concat(),
        d,
    );
    assert!(out.status.success(), "{}", text(&out));
    let start = std::time::Instant::now();
    loop {
        let out = run(&base, d);
        if text(&out).contains("answered 404") {
            assert_eq!(out.status.code(), Some(4), "{}", text(&out));
            break;
        }
        assert!(
            start.elapsed().as_secs() < 15,
            "the disabled key is still served: {}",
            text(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(server.terminate().success());
    let log = server.output();
    for form in leak_forms(&secrets(&keys)[0].2) {
        assert!(
            !log.contains(&form),
            "a form of the secret appears in the server output"
        );
    }
}

#[test]
fn probe_names_padding_against_a_server_configured_for_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut server, port) = spawn_configured(
        d,
        &[Key::new("ccsdemo", 1)],
        "[wrap]\npadding = \"oaep-sha256\"",
    );
    let (cert, key, ca) = write_client(d, "ccsdemo");
    let url = format!("https://localhost:{port}/kek/ccsdemo/1");
    let probe = [
        "probe", &url, "--cert", &cert, "--key", &key, "--cacert", &ca,
    ];
    let out = run(&probe, d);
    assert_eq!(
        out.status.code(),
        Some(7),
        "a 200 the database could not use"
    );
    let said = text(&out);
    assert!(
        said.contains("padding mismatch")
            && said.contains("oaep-sha256")
            && said.contains("[wrap] padding"),
        "{said}"
    );
    assert!(
        run(&[&probe[..], &["--padding", "oaep-sha256"]].concat(), d)
            .status
            .success()
    );
    assert!(server.terminate().success());
}

#[test]
fn wrap_computes_the_answer_offline_and_inspect_explains_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = Key::new("ccsdemo", 1);
    let secret = key.secret.clone();
    let config = write_config(d, &[key], "");
    let config = config.to_str().unwrap();
    let (cert, key, _) = write_client(d, "ccsdemo");

    let out = run(
        &[
            "wrap",
            "--cert",
            &cert,
            "--instance",
            "ccsdemo",
            "--key-id",
            "1",
            "--config",
            config,
        ],
        d,
    );
    assert!(out.status.success(), "{}", text(&out));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let wrapped = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        body["wrappedKey"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("wrapped.bin"), wrapped).unwrap();
    let unwrapped = Command::new("openssl")
        .args([
            "pkeyutl",
            "-decrypt",
            "-inkey",
            &key,
            "-in",
            "wrapped.bin",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        unwrapped.stdout == secret.as_bytes(),
        "OpenSSL did not unwrap the offline answer"
    );
    let refused = run(
        &[
            "wrap",
            "--cert",
            &cert,
            "--instance",
            "other",
            "--key-id",
            "1",
            "--config",
            config,
        ],
        d,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("Common Name") && text(&refused).contains("answer 401"),
        "{}",
        text(&refused)
    );

    // inspect: the generated certificate is accepted, the published one refused for its issuer.
    let out = run(&["inspect", &cert, "--config", config], d);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    for want in [
        "tse_ccsdemo (instance ccsdemo)",
        "RSA 2048 bits",
        "Digital Signature, Key Agreement",
        "clientAuth",
        "DNS:tse_ccsdemo",
        "verified by",
        "CN=snc-db-encrypt",
        "ACCEPTED",
    ] {
        assert!(report.contains(want), "want {want:?} in:\n{report}");
    }
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ccsdemo-db-certificate.b64"
    );
    let header_value = std::fs::read_to_string(fixture).unwrap();
    for input in [fixture, header_value.trim()] {
        let out = run(&["inspect", input, "--config", config], d);
        let report = text(&out);
        assert!(out.status.success(), "{report}");
        for want in [
            "CN=tse_ccsdemo",
            "ServiceNow TSECSK Root CA - G1",
            "RSA 2048 bits",
            "1c:46:c6:44",
            "instance ccsdemo: 401",
            "not issued by a configured trust root",
        ] {
            assert!(report.contains(want), "want {want:?} in:\n{report}");
        }
    }
    let out = run(
        &["inspect", &cert, "--instance", "other", "--config", config],
        d,
    );
    assert!(text(&out).contains("instance other: 401"), "{}", text(&out));
    // --json: the same facts, and the verdict as a boolean.
    for (instance, accepted) in [("ccsdemo", true), ("other", false)] {
        let out = run(
            &[
                "inspect",
                &cert,
                "--instance",
                instance,
                "--json",
                "--config",
                config,
            ],
            d,
        );
        assert!(out.status.success(), "{}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["accepted"], accepted, "{report}");
        assert_eq!(report["public_key"], "RSA 2048 bits");
        assert!(report["sha256"].as_str().unwrap().len() == 64);
    }
    let out = run(&["inspect", "not a certificate"], d);
    assert_eq!(out.status.code(), Some(1));
}
