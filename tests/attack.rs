//! Nobody can starve the kill switch: idle connections of every protocol are closed at the
//! header timeout, an excluded host never holds a slot, and one host cannot take them all while
//! the poller, from another address, keeps getting its key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::IpAddr;
use std::time::Duration;

use support::attack::{self, Attack, Idle};
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const TLS12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The tests of this file run one at a time: an attack's load must not stretch another test's
/// timing window.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_idle_connection_is_closed_at_the_header_timeout() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(
        &[Key::new("ccsdemo", 1)],
        "[limits]\nheader_timeout = \"1s\"\nhandshake_timeout = \"1s\"",
    )
    .await;
    let kinds = [
        Idle::Handshake,
        Idle::Tls,
        Idle::H2Preface,
        Idle::H2AfterRequest,
        Idle::H2IncompleteHead,
    ];
    let holds: Vec<_> = kinds
        .iter()
        .map(|&kind| {
            let target = server.addr;
            tokio::spawn(async move {
                let held = tokio::time::timeout(
                    Duration::from_secs(8),
                    attack::hold(ip("127.0.0.1"), target, kind, client_config(TLS13)),
                )
                .await;
                (kind, held)
            })
        })
        .collect();
    // A plain connection to the admin listener that never sends a byte.
    let admin = server.admin;
    let admin_hold = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut tcp = TcpStream::connect(admin).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(8), tcp.read_to_end(&mut buf)).await;
        (read.is_ok(), started.elapsed())
    });
    for hold in holds {
        let (kind, held) = hold.await.unwrap();
        let held = held
            .unwrap_or_else(|_| panic!("{kind:?}: the connection was never closed"))
            .unwrap_or_else(|| panic!("{kind:?}: the connection did not get as far as idling"));
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(4),
            "{kind:?}: closed after {held:?}, header_timeout is 1s"
        );
    }
    let (closed, after) = admin_hold.await.unwrap();
    assert!(
        closed && after < Duration::from_secs(4),
        "idle admin connection held {after:?}"
    );
    let (_, m) = server.admin_get("/metrics").await;
    assert!(
        sample(&m, "ccs_connections_refused_total{reason=\"idle_timeout\"}") >= Some(4.0),
        "{m}"
    );
}

/// Polls from 127.0.0.1 during an attack from 127.0.0.2; every poll must get its key.
async fn poll_during_attack(server: &TestServer) -> attack::Polls {
    let cert = db_cert("ccsdemo");
    let request = request_bytes(
        "GET",
        "/kek/ccsdemo/1",
        &[("X-DB-Certificate", header(&cert).as_str())],
    );
    let attack = Attack::launch(
        ip("127.0.0.2"),
        server.addr,
        1024,
        256,
        Duration::from_millis(250),
        client_config(TLS13),
    );
    // Let the attack take what it can.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let polls = attack::poll(
        ip("127.0.0.1"),
        server.addr,
        request.as_bytes(),
        25,
        Duration::from_millis(100),
        Duration::from_secs(5),
        client_config(TLS12),
    )
    .await;
    let attempts = attack.opened.load(std::sync::atomic::Ordering::Relaxed);
    drop(attack);
    assert!(attempts >= 1280, "the attack opened only {attempts}");
    assert!(polls.failed.is_empty(), "failed polls: {:?}", polls.failed);
    polls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_cannot_take_every_connection_slot() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(
        &[Key::new("ccsdemo", 1)],
        "[limits]\nheader_timeout = \"2s\"\nhandshake_timeout = \"2s\"",
    )
    .await;
    let polls = poll_during_attack(&server).await;
    assert_eq!(polls.ok.len(), 25);
    let (_, m) = server.admin_get("/metrics").await;
    let refused = sample(
        &m,
        "ccs_connections_refused_total{reason=\"max_connections_per_client\"}",
    );
    assert!(refused > Some(1000.0), "per-client refusals: {refused:?}");
    assert_eq!(
        sample(
            &m,
            "ccs_connections_refused_total{reason=\"max_connections\"}"
        ),
        Some(0.0),
        "the global cap was reached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_host_never_holds_a_slot() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(
        &[Key::new("ccsdemo", 1)],
        "[server]\nallow = [\"127.0.0.1/32\"]",
    )
    .await;
    poll_during_attack(&server).await;
    let (_, m) = server.admin_get("/metrics").await;
    assert!(
        sample(&m, "ccs_connections_refused_total{reason=\"not_allowed\"}") >= Some(1280.0),
        "{m}"
    );
    // The scrape itself is on the admin port: nothing is open on the service port.
    wait_until("the attack's connections to close", || async {
        let (_, m) = server.admin_get("/metrics").await;
        sample(&m, "ccs_open_connections") == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_many_addresses_give_way_to_a_poll() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // The shipped limits: 1,024 slots, 64 a client, a 10 s header timeout.
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    // 1,100 idle TLS sockets from 20 addresses (55 each, under the per-client cap), each
    // reconnecting when closed: more than every slot.
    let attacks: Vec<Attack> = (2..22)
        .map(|n| {
            Attack::launch(
                ip(&format!("127.0.0.{n}")),
                server.addr,
                55,
                0,
                Duration::from_millis(250),
                client_config(TLS13),
            )
        })
        .collect();
    wait_until("the attack to fill every slot", || async {
        let (_, m) = server.admin_get("/metrics").await;
        sample(&m, "ccs_open_connections") >= Some(1000.0)
    })
    .await;
    let cert = db_cert("ccsdemo");
    let request = request_bytes(
        "GET",
        "/kek/ccsdemo/1",
        &[("X-DB-Certificate", header(&cert).as_str())],
    );
    let polls = attack::poll(
        ip("127.0.0.1"),
        server.addr,
        request.as_bytes(),
        10,
        Duration::from_millis(200),
        Duration::from_secs(2),
        client_config(TLS12),
    )
    .await;
    drop(attacks);
    assert!(polls.failed.is_empty(), "failed polls: {:?}", polls.failed);
    assert_eq!(polls.ok.len(), 10);
    let (_, m) = server.admin_get("/metrics").await;
    assert!(
        sample(&m, "ccs_connections_refused_total{reason=\"shed_idle\"}") >= Some(10.0),
        "{m}"
    );
}
