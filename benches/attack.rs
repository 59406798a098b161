//! The poller's latency with and without a connection-exhaustion attack, against ccs-endpoint
//! and nginx in the same run (scripts/bench-attack.sh starts both and passes their addresses).
//!
//!   cargo bench --bench attack -- CA.pem HEADER_FILE ccs=127.0.0.1:PORT nginx=127.0.0.1:PORT
//!
//! Each target is polled from 127.0.0.1 (a new TLS 1.2 connection per poll, as the SaaS does),
//! first alone, then while 127.0.0.2 holds 1,024 idle TLS and HTTP/2 connections and floods
//! 256 unfinished handshakes, reconnecting whenever the server closes one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/attack.rs"]
mod attack;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const POLLS: usize = 200;
const EVERY: Duration = Duration::from_millis(20);

fn client(
    ca: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` adds `--bench`; every other argument is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 3 {
        eprintln!("usage: attack CA.pem HEADER_FILE name=ADDR... (see scripts/bench-attack.sh)");
        return;
    }
    let (ca, header) = (
        &args[0],
        std::fs::read_to_string(&args[1]).expect("header file"),
    );
    let request = format!(
        "GET /kek/ccsdemo/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-DB-Certificate: {}\r\n\r\n",
        header.trim()
    );
    let (poller, attacker): (IpAddr, IpAddr) =
        ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "target",
        "p50 alone",
        "p99 alone",
        "p50 attack",
        "p99 attack",
        "p50 spread",
        "p99 spread",
        "failed"
    );
    for target in &args[2..] {
        let (name, addr) = target.split_once('=').expect("name=ADDR");
        let addr: SocketAddr = addr.parse().expect("address");
        let poll = || {
            attack::poll(
                poller,
                addr,
                request.as_bytes(),
                POLLS,
                EVERY,
                Duration::from_secs(10),
                client(ca, &rustls::version::TLS12),
            )
        };
        let alone = poll().await;
        let flood = attack::Attack::launch(
            attacker,
            addr,
            1024,
            256,
            Duration::from_millis(250),
            client(ca, &rustls::version::TLS13),
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let attacked = poll().await;
        drop(flood);
        // Let the target close what the attack left open before the next one is measured.
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The spread attack: 1,100 idle TLS sockets from 20 addresses (55 each, under a
        // per-client cap of 64), more than every slot, each reconnecting when closed.
        let spread: Vec<attack::Attack> = (2..22)
            .map(|n| {
                attack::Attack::launch(
                    format!("127.0.1.{n}").parse().unwrap(),
                    addr,
                    55,
                    0,
                    Duration::from_millis(250),
                    client(ca, &rustls::version::TLS13),
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let spread_polls = poll().await;
        drop(spread);
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "{name:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
            ms(alone.quantile(0.5)),
            ms(alone.quantile(0.99)),
            ms(attacked.quantile(0.5)),
            ms(attacked.quantile(0.99)),
            ms(spread_polls.quantile(0.5)),
            ms(spread_polls.quantile(0.99)),
            alone.failed.len() + attacked.failed.len() + spread_polls.failed.len()
        );
        for (what, polls) in [("attack", &attacked), ("spread attack", &spread_polls)] {
            if let Some(why) = polls.failed.first() {
                println!(
                    "{name:<14} first failure under {what}: {why} ({} of {POLLS} failed)",
                    polls.failed.len()
                );
            }
        }
    }
}
