#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The audit chain of a single node (contract §10): `audit.jsonl` beside the key store gets
//! one record per key-state change, from the CLI (with its user and reason) and from the server
//! for changes made to the file by other means; `audit verify` names the first record changed,
//! removed or reordered; a chain that cannot be written never stops a kill switch.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::process::bin;
use support::{replace_file, sample, wait_until, write_config, Key, TestServer};

fn cli(config: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .arg("--config")
        .arg(config)
        .env("USER", "alice")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn actions(dir: &Path) -> Vec<String> {
    records(dir)
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["actor"].as_str().unwrap(),
                r["action"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn every_cli_change_is_recorded_with_its_user_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[], "");
    let key = ["--instance", "ccsdemo", "--key-id", "1"];
    ok(&cli(&config, &[&["keys", "generate"][..], &key].concat()));
    ok(&cli(
        &config,
        &[
            &["keys", "disable"][..],
            &key,
            &["--reason", "INC-42: \"stolen\"\n"],
        ]
        .concat(),
    ));
    ok(&cli(&config, &[&["keys", "enable"][..], &key].concat()));
    ok(&cli(
        &config,
        &["keys", "shutdown", "--instance", "ccsdemo"],
    ));
    ok(&cli(&config, &["keys", "restore", "--instance", "ccsdemo"]));
    ok(&cli(&config, &["keys", "list"])); // reads: records nothing
    assert_eq!(
        actions(dir.path()),
        [
            "cli:alice add",
            "cli:alice disable",
            "cli:alice enable",
            "cli:alice shutdown",
            "cli:alice restore"
        ]
    );
    let r = &records(dir.path())[1];
    assert_eq!(r["reason"], "INC-42: \"stolen\"\n");
    assert_eq!(r["before"]["disabled"], false);
    assert_eq!(r["after"]["disabled"], true);
    assert_eq!(r["after"]["kcv"].as_str().unwrap().len(), 6);
    let out = ok(&cli(&config, &["audit", "verify"]));
    assert!(out.contains("audit chain intact: 5 records"), "{out}");
    let out = ok(&cli(&config, &["audit", "show", "--instance", "ccsdemo"]));
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.contains("disable") && out.contains("INC-42"), "{out}");

    // A flag of the fleet only.
    let out = cli(
        &config,
        &[&["keys", "disable"][..], &key, &["--wait"]].concat(),
    );
    assert!(!out.status.success());
}

#[test]
fn tampering_is_named_by_the_first_record_it_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[], "");
    let key = ["--instance", "ccsdemo", "--key-id", "1"];
    ok(&cli(&config, &[&["keys", "generate"][..], &key].concat()));
    for action in ["disable", "enable", "disable", "enable"] {
        ok(&cli(&config, &[&["keys", action][..], &key].concat()));
    }
    let path = dir.path().join("audit.jsonl");
    let good = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let verify = |text: String| {
        std::fs::write(&path, text).unwrap();
        let out = cli(&config, &["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let changed = good.replacen("\"enable\"", "\"disable\"", 1);
    assert!(verify(changed).contains("record seq 3 was changed"));
    let removed = [&lines[..2], &lines[3..]].concat().join("\n") + "\n";
    assert!(verify(removed).contains("at seq 4: expected seq 3"));
    let reordered = [lines[0], lines[2], lines[1], lines[3], lines[4]].join("\n") + "\n";
    assert!(verify(reordered).contains("at seq 3: expected seq 2"));
    let torn = good[..good.len() - 10].to_owned();
    let error = verify(torn);
    assert!(
        error.contains("line 5: the last record is incomplete"),
        "{error}"
    );
    // A rewritten file whose states hold terminal controls and a line break: `show` (which
    // does not verify) escapes them, never printing a forged line.
    let mut first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    first["after"]["kcv"] = "\u{1b}[31mRED\nFAKE LINE".into();
    first["after"]["not_after"] = "2027\u{1b}[2K".into();
    std::fs::write(&path, format!("{first}\n")).unwrap();
    let shown = ok(&cli(&config, &["audit", "show"]));
    assert!(
        !shown.contains('\u{1b}') && shown.lines().count() == 1,
        "{shown:?}"
    );
}

#[test]
fn a_chain_that_cannot_be_written_never_stops_a_kill_switch() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], "");
    // Something that is not a file where the chain goes.
    std::fs::create_dir(dir.path().join("audit.jsonl")).unwrap();
    let out = cli(
        &config,
        &["keys", "disable", "--instance", "ccsdemo", "--key-id", "1"],
    );
    let text = ok(&out);
    assert!(text.contains("DISABLED"), "{text}");
    assert!(
        text.contains("warning:") && text.contains("not recorded in the audit chain"),
        "{text}"
    );
    let list = ok(&cli(&config, &["keys", "list", "--json"]));
    assert!(list.contains("\"disabled\""), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_records_what_the_cli_did_not() {
    let key = Key::new("ccsdemo", 1);
    let secret = key.secret.clone();
    let server = TestServer::start(&[key], "").await;
    let dir = server.dir.path().to_owned();
    // At start-up: the keys found in the file.
    assert_eq!(actions(&dir), ["file add"]);
    assert_eq!(
        records(&dir)[0]["reason"],
        "found in the key-store file at start-up"
    );

    // An edit by hand: the server records it when it reloads.
    replace_file(
        &dir.join("keys.toml"),
        &format!(
            "[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{secret}\"\ndisabled = true\n"
        ),
    );
    wait_until("the hand edit recorded", || async {
        actions(&dir).len() == 2
    })
    .await;
    assert_eq!(actions(&dir)[1], "file disable");
    assert_eq!(records(&dir)[1]["reason"], "the key-store file changed");

    // A CLI change while the server runs: recorded once, as the CLI's.
    let config = dir.join("ccs-endpoint.toml");
    ok(&cli(
        &config,
        &["keys", "enable", "--instance", "ccsdemo", "--key-id", "1"],
    ));
    wait_until("the server reloaded", || async {
        server
            .get(
                "/kek/ccsdemo/1",
                Some(&support::header(&support::db_cert("ccsdemo"))),
            )
            .await
            .status
            == 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        actions(&dir),
        ["file add", "file disable", "cli:alice enable"]
    );
    let out = ok(&cli(&config, &["audit", "verify"]));
    assert!(out.contains("intact: 3 records"), "{out}");
    let (_, metrics) = server.admin_get("/metrics").await;
    assert_eq!(sample(&metrics, "ccs_audit_chain_ok"), Some(1.0));
    // The head is exported, to be kept outside the chain.
    let head = records(&dir)[2]["hash"].as_str().unwrap().to_owned();
    assert_eq!(
        sample(&metrics, &format!("ccs_audit_head{{hash=\"{head}\"}}")),
        Some(3.0),
        "{metrics}"
    );

    // A broken chain is reported by the next change the server records.
    let path = dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("file disable", "x", 0)
            .replacen("\"file\"", "\"mallory\"", 1),
    )
    .unwrap();
    replace_file(
        &dir.join("keys.toml"),
        &format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{secret}\"\nnot_after = \"2020-01-01T00:00:00Z\"\n"),
    );
    wait_until("the broken chain reported", || async {
        let (_, metrics) = server.admin_get("/metrics").await;
        sample(&metrics, "ccs_audit_chain_ok") == Some(0.0)
    })
    .await;
    assert_eq!(actions(&dir).last().unwrap(), "file shutdown");
}

#[test]
fn a_head_kept_outside_anchors_the_tail_and_a_linked_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[], "");
    let key = ["--instance", "ccsdemo", "--key-id", "1"];
    ok(&cli(&config, &[&["keys", "generate"][..], &key].concat()));
    let mut heads = Vec::new();
    for action in ["disable", "enable", "disable"] {
        let out = ok(&cli(&config, &[&["keys", action][..], &key].concat()));
        // Every change prints the chain's new head.
        let head = out
            .lines()
            .find_map(|l| l.strip_prefix("audit head "))
            .unwrap_or_else(|| panic!("no head printed: {out}"))
            .to_owned();
        heads.push(head);
    }
    let last = heads.last().unwrap().clone();
    assert!(last.starts_with("4:"), "{last}");
    let out = ok(&cli(&config, &["audit", "verify", "--head", &last]));
    assert!(out.contains(&format!("head {last}")), "{out}");

    // The last record removed: the chain still verifies, but no longer holds the head.
    let path = dir.path().join("audit.jsonl");
    let good = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    std::fs::write(&path, lines[..3].join("\n") + "\n").unwrap();
    ok(&cli(&config, &["audit", "verify"]));
    let out = cli(&config, &["audit", "verify", "--head", &last]);
    assert_eq!(out.status.code(), Some(1));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("no record seq 4") && error.contains("ends at seq 3"),
        "{error}"
    );

    // Rewritten whole (a new chain of the same length): the head's hash gives it away.
    std::fs::remove_file(&path).unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_config = write_config(other.path(), &[], "");
    ok(&cli(
        &other_config,
        &[&["keys", "generate"][..], &key].concat(),
    ));
    for action in ["disable", "enable", "disable"] {
        ok(&cli(&other_config, &[&["keys", action][..], &key].concat()));
    }
    std::fs::copy(other.path().join("audit.jsonl"), &path).unwrap();
    ok(&cli(&config, &["audit", "verify"]));
    let out = cli(&config, &["audit", "verify", "--head", &last]);
    assert_eq!(out.status.code(), Some(1));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("record seq 4 has hash") && error.contains("rewritten"),
        "{error}"
    );
    let out = cli(&config, &["audit", "verify", "--head", "4:nothex"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not SEQ:HASH"));

    // A chain behind a symbolic link is refused, by the reader and by the next change.
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(other.path().join("audit.jsonl"), &path).unwrap();
    let out = cli(&config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("a symbolic link, not a regular file"),
        "{error}"
    );
    let out = ok(&cli(&config, &[&["keys", "enable"][..], &key].concat()));
    assert!(
        out.contains("symbolic link") && out.contains("not recorded"),
        "{out}"
    );
    let chained = std::fs::read_to_string(other.path().join("audit.jsonl")).unwrap();
    assert_eq!(
        chained.lines().count(),
        4,
        "the change was written through the link"
    );
}
