//! Soak and robustness: the real binary on loopback for SOAK_SECONDS (default 30, part of the
//! README's test command; `scripts/long-checks.sh` runs it for 10 minutes) while valid polls mix with garbage
//! headers, huge headers, slow and half-open connections, TLS garbage and abrupt disconnects,
//! and the key store is rewritten every 4 s (a reload settles 3 s after the last change).
//! Asserts zero failed valid polls, zero 5xx, no panic in the log, a clean exit on SIGTERM and,
//! on a run of two minutes or more, resident memory growing less than 10 % from the first
//! window (a third of the run, at most a minute) to the last. Bounded: time-limited loops, a few clients each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::process::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TLS12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

#[derive(Default)]
struct Counts {
    valid: AtomicU64,
    valid_failed: AtomicU64,
    hostile: AtomicU64,
    server_errors: AtomicU64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

async fn tls(addr: std::net::SocketAddr) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(client_config(TLS13));
    let tcp = TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new("ccsdemo", 1);
    let secret = key.secret.clone();
    let (mut server, port) = spawn_configured(
        dir.path(),
        &[key],
        "[limits]\nheader_timeout = \"2s\"\nhandshake_timeout = \"2s\"",
    );
    let pid = server.child.id();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cert = Arc::new(db_cert("ccsdemo"));
    let good = Arc::new(header(&cert));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();

    // Valid polls, TLS 1.2 and 1.3: every one must be a 200 that unwraps.
    for version in [TLS12, TLS13] {
        let (stop, counts, good, cert) = (stop.clone(), counts.clone(), good.clone(), cert.clone());
        tasks.push(tokio::spawn(async move {
            let raw = request_bytes("GET", "/kek/ccsdemo/1", &[("X-DB-Certificate", &good)]);
            while !stop.load(Ordering::SeqCst) {
                let reply = raw_request(addr, version, raw.as_bytes()).await;
                counts.valid.fetch_add(1, Ordering::Relaxed);
                let ok = reply.status == 200
                    && reply.json()["wrappedKey"]
                        .as_str()
                        .is_some_and(|w| !unwrap_with(&cert, w, false).is_empty());
                if !ok {
                    counts.valid_failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    // Hostile requests that get an answer: garbage and huge headers, bad paths.
    {
        let (stop, counts) = (stop.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let huge = "A".repeat(40_000);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let garbage = format!("{n:x}garbage+/=={n}");
                let (path, value) = match n % 4 {
                    0 => ("/kek/ccsdemo/1", garbage.as_str()),
                    1 => ("/kek/ccsdemo/1", huge.as_str()),
                    2 => ("/kek/../../etc/passwd", "x"),
                    _ => ("/kek/ccsdemo/1", "MIIB"),
                };
                let raw = request_bytes("GET", path, &[("X-DB-Certificate", value)]);
                let connector = tokio_rustls::TlsConnector::from(client_config(TLS13));
                if let Ok(tcp) = TcpStream::connect(addr).await {
                    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                    if let Ok(mut s) = connector.connect(name, tcp).await {
                        let _ = s.write_all(raw.as_bytes()).await;
                        let mut bytes = Vec::new();
                        let _ = s.read_to_end(&mut bytes).await;
                        if bytes.starts_with(b"HTTP/1.1 5") {
                            counts.server_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                counts.hostile.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    // Connections that misbehave: TLS garbage, half-open, slow headers, abrupt disconnects.
    {
        let (stop, counts) = (stop.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                match n % 4 {
                    0 => {
                        if let Ok(mut tcp) = TcpStream::connect(addr).await {
                            let _ = tcp
                                .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5])
                                .await;
                            let mut sink = Vec::new();
                            let _ = tokio::time::timeout(
                                Duration::from_secs(3),
                                tcp.read_to_end(&mut sink),
                            )
                            .await;
                        }
                    }
                    1 => {
                        // Half-open: connect and say nothing; dropped after a moment.
                        if let Ok(tcp) = TcpStream::connect(addr).await {
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                                drop(tcp);
                            });
                        }
                    }
                    2 => {
                        if let Some(mut s) = tls(addr).await {
                            tokio::spawn(async move {
                                let _ = s
                                    .write_all(b"GET /kek/ccsdemo/1 HTTP/1.1\r\nHost: x\r\n")
                                    .await;
                                let mut sink = Vec::new();
                                let _ = s.read_to_end(&mut sink).await;
                            });
                        }
                    }
                    _ => {
                        if let Some(mut s) = tls(addr).await {
                            let _ = s
                                .write_all(b"GET /kek/ccsdemo/1 HTTP/1.1\r\nHost: x\r\n\r\n")
                                .await;
                            drop(s);
                        }
                    }
                }
                counts.hostile.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // The key store rewritten (same key, changing comment) every 4 s: a reload waits for 3 s
    // without a change (un-kill settles), so faster rewrites would be loaded only every 10 s
    // (the most a reload waits).
    {
        let (stop, path, secret) = (stop.clone(), dir.path().join("keys.toml"), secret.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let text = format!("# rewrite {n}\n[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{secret}\"\n");
                let tmp = path.with_extension("tmp");
                write_private(&tmp, &text);
                std::fs::rename(&tmp, &path).unwrap();
                tokio::time::sleep(Duration::from_millis(4000)).await;
            }
        }));
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        samples.push((started.elapsed(), rss_kib(pid)));
    }
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let status = server.terminate();
    let log = server.output();

    // Memory is judged between the first and the last window, past start-up's first samples.
    let window = Duration::from_secs((seconds / 3).clamp(10, 60));
    let first = samples
        .iter()
        .filter(|(t, _)| *t <= window)
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let last = samples
        .iter()
        .filter(|(t, _)| {
            *t >= started
                .elapsed()
                .saturating_sub(window + Duration::from_secs(5))
        })
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let (valid, failed) = (
        counts.valid.load(Ordering::SeqCst),
        counts.valid_failed.load(Ordering::SeqCst),
    );
    let hostile = counts.hostile.load(Ordering::SeqCst);
    let errors = counts.server_errors.load(Ordering::SeqCst);
    let reloads = log.matches("event=\"reload\"").count();
    println!(
        "soak: {seconds}s, {valid} valid polls ({failed} failed), {hostile} hostile exchanges, {errors} 5xx, {reloads} reloads, RSS first {}s {first} KiB, last {}s {last} KiB ({:+.1} %)",
        window.as_secs(),
        window.as_secs(),
        (last as f64 - first as f64) * 100.0 / first.max(1) as f64
    );
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert!(valid > 100, "too few valid polls to judge: {valid}");
    assert_eq!(failed, 0, "valid polls failed");
    assert_eq!(errors, 0, "5xx answers");
    assert!(reloads > 0, "the key store was never reloaded");
    assert!(!log.contains("panicked"), "a panic in the log");
    // A leak shows over minutes, not over the warm-up of a short run: memory is judged on a
    // run of two minutes or more (scripts/long-checks.sh), printed on any.
    if seconds >= 120 {
        assert!(
            first > 0 && (last as f64) < first as f64 * 1.10,
            "RSS grew from {first} to {last} KiB"
        );
    }
    for form in leak_forms(&secret) {
        assert!(!log.contains(&form), "a form of the secret in the soak log");
    }
}
