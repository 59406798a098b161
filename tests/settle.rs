#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Kill wins at once; un-kill settles (contract §7), against a writer that rewrites a file in
//! place and pauses half-way, as an editor or a configuration tool may: a withdrawal is served
//! from the moment it can be read, and nothing a half-written file seems to give back is
//! served, not even for one poll.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::fleet::KEK;
use support::{db_cert, header, Key, TestServer};

/// Polls `server` every 20 ms for `long`: every status seen, in order.
async fn statuses(server: &TestServer, long: Duration) -> Vec<u16> {
    let cert = header(&db_cert("ccsdemo"));
    let began = Instant::now();
    let mut seen = Vec::new();
    while began.elapsed() < long {
        seen.push(server.get(KEK, Some(&cert)).await.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// Rewrites `path` in place (truncate, write), pausing `pause` between `first` and `rest`.
fn rewrite_paused(path: &std::path::Path, first: &str, rest: &str, pause: Duration) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.write_all(first.as_bytes()).unwrap();
    file.flush().unwrap();
    std::thread::sleep(pause);
    file.write_all(rest.as_bytes()).unwrap();
    file.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_rewrite_never_revives_a_killed_key_and_a_kill_applies_at_once() {
    let key = Key::new("ccsdemo", 1);
    let killed = Key::new("ccsdemo", 1).with("disabled = true");
    let server = TestServer::start(&[killed], "").await;
    let store = server.dir.path().join("keys.toml");
    let seen = statuses(&server, Duration::from_millis(100)).await;
    assert!(seen.iter().all(|s| *s == 404), "{seen:?}");

    // The writer puts the entry first and its `disabled = true` 1.5 s later: the entry alone
    // is a valid store that serves the key. Not one poll may see it.
    let entry = format!(
        "[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{}\"\n",
        key.secret
    );
    let writer = {
        let (store, entry) = (store.clone(), entry.clone());
        std::thread::spawn(move || {
            rewrite_paused(
                &store,
                &entry,
                "disabled = true\n",
                Duration::from_millis(1500),
            )
        })
    };
    let seen = statuses(&server, Duration::from_secs(5)).await;
    writer.join().unwrap();
    assert!(
        seen.iter().all(|s| *s == 404),
        "a killed key was served: {seen:?}"
    );

    // An un-kill written whole is served once the file has settled (3 s), not before.
    let began = Instant::now();
    support::replace_file(&store, &entry);
    let seen = statuses(&server, Duration::from_millis(2500)).await;
    assert!(
        seen.iter().all(|s| *s == 404),
        "served before settling: {seen:?}"
    );
    support::wait_until("the settled un-kill", async || {
        server
            .get(KEK, Some(&header(&db_cert("ccsdemo"))))
            .await
            .status
            == 200
    })
    .await;
    assert!(
        began.elapsed() >= Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );

    // A kill, written in place by a writer that then pauses before finishing the file, is
    // served the moment it can be read.
    let writer = {
        let store = store.clone();
        let first = format!("{entry}disabled = true\n");
        std::thread::spawn(move || {
            rewrite_paused(&store, &first, "# the rest\n", Duration::from_secs(4))
        })
    };
    let began = Instant::now();
    support::wait_until("the kill", async || {
        server
            .get(KEK, Some(&header(&db_cert("ccsdemo"))))
            .await
            .status
            == 404
    })
    .await;
    let took = began.elapsed();
    writer.join().unwrap();
    assert!(
        took < Duration::from_millis(1500),
        "the kill waited {took:?}"
    );
}
