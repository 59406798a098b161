//! The runbooks as an operator runs them: every `ccs-endpoint` command of docs/runbooks.md, in
//! the document's order, against a live server laid out as `init` lays it out, each with the
//! exit status the runbook says (`# exit N`, else 0).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use ccs_endpoint::tools::pki::{self, KeyKind};
use support::process::*;
use support::*;

/// Where the admin listener of every process goes (the example configuration leaves it unset).
const ADMIN: (&str, &str) = ("CCS_ENDPOINT_ADMIN_LISTEN", "127.0.0.1:0");

/// The `ccs-endpoint` command lines of the runbooks' `sh` blocks, with the exit status each
/// expects.
fn runbook_commands(text: &str) -> Vec<(String, i32)> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in text.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            command if in_sh && command.starts_with("ccs-endpoint ") => {
                let (command, code) = match command.split_once("# exit ") {
                    Some((command, code)) => (command.trim(), code.trim().parse().unwrap()),
                    None => (command, 0),
                };
                commands.push((command.to_owned(), code));
            }
            _ => {}
        }
    }
    commands
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The skeleton `init` writes, with this test's PKI in `certs/`, the service on `port` (loopback),
/// one key for `ccsdemo`, and the files the runbooks name: the database's certificate and key,
/// the server's CA, an escrow certificate and key, Cloud Encryption's wrapping certificate.
fn lay_out(d: &Path, port: u16) {
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .current_dir(d)
            .env(ADMIN.0, ADMIN.1)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    run(&["init", "--dir", "."]);
    let p = pki();
    std::fs::write(d.join("certs/server.crt"), p.server.cert_pem()).unwrap();
    write_private(&d.join("certs/server.key"), &p.server.key_pem());
    std::fs::write(d.join("certs/snc-db-encrypt.ca.pem"), p.root_a.cert_pem()).unwrap();
    std::fs::write(
        d.join("certs/snc-db-ejbca-root.pem"),
        format!("{}{}", p.root_b.cert_pem(), p.intermediate.cert_pem()),
    )
    .unwrap();
    let config = d.join("config/ccs-endpoint.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("listen = \"0.0.0.0:8443\""), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "listen = \"0.0.0.0:8443\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        ),
    )
    .unwrap();
    run(&["keys", "generate", "--instance", "ccsdemo", "--key-id", "1"]);
    let db = db_cert("ccsdemo");
    std::fs::write(d.join("db.crt"), db.cert_pem()).unwrap();
    write_private(&d.join("db.key"), &db.key_pem());
    std::fs::write(d.join("ca.crt"), p.server_ca.cert_pem()).unwrap();
    let escrow = pki::ca("escrow", KeyKind::Rsa2048).unwrap();
    std::fs::write(d.join("escrow.crt"), escrow.cert_pem()).unwrap();
    write_private(&d.join("escrow.key"), &escrow.key_pem());
    let cloud = pki::ca("Cloud Encryption wrapping", KeyKind::Rsa2048).unwrap();
    std::fs::write(d.join("cloud-wrapping.crt"), cloud.cert_pem()).unwrap();
}

#[test]
fn every_runbook_command_runs_as_written() {
    let runbooks =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runbooks.md")).unwrap();
    let commands = runbook_commands(&runbooks);
    assert!(commands.len() >= 12, "{commands:?}");
    assert!(
        commands.iter().any(|(_, code)| *code != 0),
        "no runbook command expects a failure exit: the kill switches are not exercised"
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    lay_out(d, port);
    let mut serve = bin();
    serve.arg("serve").current_dir(d).env(ADMIN.0, ADMIN.1);
    let mut server = Running::spawn(serve);
    server.wait_for("listening");

    for (command, want) in &commands {
        let line = command
            .replace("<instance>", "ccsdemo")
            .replace("<host>", &format!("localhost:{port}"));
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        // A poll sees a change once the server has reloaded it (well under a second).
        let patience = if args.first() == Some(&"probe") {
            Duration::from_secs(15)
        } else {
            Duration::ZERO
        };
        let started = Instant::now();
        loop {
            let out = bin()
                .args(&args)
                .current_dir(d)
                .env(ADMIN.0, ADMIN.1)
                .output()
                .unwrap();
            if out.status.code() == Some(*want) {
                break;
            }
            assert!(
                started.elapsed() < patience,
                "`{line}` exited {:?}, not {want}:\n{}\nserver:\n{}",
                out.status.code(),
                text(&out),
                server.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(server.terminate().success(), "{}", server.output());
}
