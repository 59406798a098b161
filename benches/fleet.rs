//! Kill-switch latency: from starting the command to every replica answering the new state,
//! over many disable/enable cycles, for a fleet (`[state] backend = "postgres"`), for the same
//! fleet through the signed admin API (`ccs-endpoint api disable|enable` against one replica)
//! and, as the same-run reference (the last target), for one replica with the file backend (the
//! command edits its key store, the replica reloads it). scripts/bench-fleet.sh starts
//! everything and passes:
//!
//!   cargo bench --bench fleet -- CA.pem HEADER_FILE BINARY CYCLES \
//!       fleet=CONFIG=ADDR,ADDR,ADDR api=URL,KEY_ID,SECRET_FILE=ADDR,ADDR,ADDR file=CONFIG=ADDR
//!
//! Each poll is a new TLS connection, as the SaaS makes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client(ca: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The status of one poll.
async fn status(tls: &Arc<rustls::ClientConfig>, addr: SocketAddr, request: &[u8]) -> u16 {
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("TLS");
    stream.write_all(request).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

/// Time from starting `command` until every address answers `expected` (each polled by its
/// own task, continuously).
async fn cycle(
    command: &mut std::process::Command,
    addrs: &[SocketAddr],
    expected: u16,
    tls: &Arc<rustls::ClientConfig>,
    request: &Arc<Vec<u8>>,
) -> Duration {
    let began = Instant::now();
    let mut child = command.spawn().expect("command");
    let mut polls = tokio::task::JoinSet::new();
    for &addr in addrs {
        let (tls, request) = (Arc::clone(tls), Arc::clone(request));
        polls.spawn(async move {
            while status(&tls, addr, &request).await != expected {
                assert!(
                    began.elapsed() < Duration::from_secs(30),
                    "{addr} never answered {expected}"
                );
            }
            began.elapsed()
        });
    }
    let mut latest = Duration::ZERO;
    while let Some(took) = polls.join_next().await {
        latest = latest.max(took.expect("poll task"));
    }
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "the command failed");
    latest
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 5 {
        eprintln!("usage: fleet CA.pem HEADER_FILE BINARY CYCLES name=CONFIG=ADDR,... (see scripts/bench-fleet.sh)");
        return;
    }
    let tls = client(&args[0]);
    let header = std::fs::read_to_string(&args[1]).expect("header file");
    let request = Arc::new(
        format!(
            "GET /kek/ccsdemo/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-DB-Certificate: {}\r\n\r\n",
            header.trim()
        )
        .into_bytes(),
    );
    let (binary, cycles): (&str, usize) = (&args[2], args[3].parse().expect("CYCLES"));
    println!(
        "{:<8} {:>8} {:>10} {:>10} {:>10}",
        "backend", "cycles", "p50", "p99", "max"
    );
    let mut p50s = Vec::new();
    for target in &args[4..] {
        let mut parts = target.splitn(3, '=');
        let (name, config, addrs) = (
            parts.next().unwrap(),
            parts.next().expect("CONFIG"),
            parts.next().expect("ADDRS"),
        );
        let addrs: Vec<SocketAddr> = addrs
            .split(',')
            .map(|a| a.parse().expect("address"))
            .collect();
        let mut latencies = Vec::with_capacity(cycles);
        for i in 0..cycles {
            let (action, expected) = if i % 2 == 0 {
                ("disable", 404)
            } else {
                ("enable", 200)
            };
            let mut command = std::process::Command::new(binary);
            match name {
                // CONFIG is URL,KEY_ID,SECRET_FILE: a signed request to one replica's API.
                "api" => {
                    let signing: Vec<&str> = config.split(',').collect();
                    command.args(["api", action, "--instance", "ccsdemo", "--key", "1"]);
                    command.args(["--url", signing[0], "--key-id", signing[1]]);
                    command.args(["--secret-file", signing[2], "--cacert", &args[0]]);
                }
                _ => {
                    command.args(["keys", action, "--config", config]);
                    command.args(["--instance", "ccsdemo", "--key-id", "1"]);
                }
            }
            command.stdout(std::process::Stdio::null());
            latencies.push(cycle(&mut command, &addrs, expected, &tls, &request).await);
        }
        latencies.sort();
        let p50 = quantile(&latencies, 0.5);
        p50s.push((name.to_owned(), p50));
        println!(
            "{name:<8} {cycles:>8} {:>10} {:>10} {:>10}",
            ms(p50),
            ms(quantile(&latencies, 0.99)),
            ms(*latencies.last().unwrap())
        );
    }
    // Each against the last target, the same run's reference.
    if let Some(((reference, pr), rest)) = p50s.split_last() {
        for (name, p) in rest {
            println!(
                "p50 {name}/{reference}: {:.2}",
                p.as_secs_f64() / pr.as_secs_f64()
            );
        }
    }
}
