//! A bounded connection-exhaustion attack from one loopback address, and a poller timing its
//! polls from another. Used by benches/attack.rs (p50/p99 against nginx under the same attack)
//! and by tests/attack.rs (every poll must succeed), which includes it with `#[path]`; it lives
//! here because the Docker build copies benches/ and not tests/.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

/// The HTTP/2 connection preface and an empty SETTINGS frame.
pub const H2_PREFACE: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A HEADERS frame on stream 1 for `GET /healthz` (HPACK: :method GET, :scheme https, :path as
/// a literal). `complete = false` leaves END_HEADERS off: the head never completes.
pub fn h2_get_healthz(complete: bool) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x44, 8];
    block.extend_from_slice(b"/healthz");
    let flags = if complete { 0x05 } else { 0x01 };
    let len = block.len();
    let mut frame = vec![0, 0, len as u8, 0x01, flags, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    frame
}

/// What an attacking connection does once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// TCP only, then the first 5 bytes of a ClientHello that never comes (handshake flood).
    Handshake,
    /// A finished TLS handshake (ALPN http/1.1), then nothing.
    Tls,
    /// TLS with ALPN h2, the preface and SETTINGS, then nothing.
    H2Preface,
    /// As `H2Preface`, then one complete request, then nothing.
    H2AfterRequest,
    /// As `H2Preface`, then a request head that never completes.
    H2IncompleteHead,
}

/// A TCP connection from `source` (a loopback address such as 127.0.0.2) to `target`.
pub async fn connect_from(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.set_nodelay(true)?;
    socket.connect(target).await
}

/// Opens one connection of kind `idle` and holds it until the server closes it; returns how
/// long it was held (from connect), or `None` if it never got that far.
pub async fn hold(
    source: IpAddr,
    target: SocketAddr,
    idle: Idle,
    tls: Arc<rustls::ClientConfig>,
) -> Option<Duration> {
    let started = Instant::now();
    let mut tcp = connect_from(source, target).await.ok()?;
    if idle == Idle::Handshake {
        tcp.write_all(b"\x16\x03\x01\x02\x00").await.ok()?;
        let mut buf = [0u8; 256];
        while tcp.read(&mut buf).await.ok()? > 0 {}
        return Some(started.elapsed());
    }
    let mut config = (*tls).clone();
    config.alpn_protocols = if idle == Idle::Tls {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec()]
    };
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").ok()?;
    let mut stream = connector.connect(name, tcp).await.ok()?;
    match idle {
        Idle::Handshake | Idle::Tls => {}
        Idle::H2Preface => stream.write_all(H2_PREFACE).await.ok()?,
        Idle::H2AfterRequest => {
            stream.write_all(H2_PREFACE).await.ok()?;
            stream.write_all(&h2_get_healthz(true)).await.ok()?;
        }
        Idle::H2IncompleteHead => {
            stream.write_all(H2_PREFACE).await.ok()?;
            stream.write_all(&h2_get_healthz(false)).await.ok()?;
        }
    }
    // Read (and ignore) what the server says, without ever answering, until it closes.
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return Some(started.elapsed()),
            Ok(_) => {}
        }
    }
}

/// An attack running in the background until dropped.
pub struct Attack {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Connections the server accepted far enough to be held (for the report).
    pub opened: Arc<AtomicUsize>,
}

impl Drop for Attack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Attack {
    /// `idle` holders cycling through the idle kinds and `flood` handshake holders, all from
    /// `source`; each reconnects `pause` after the server closes it, like a persistent attacker.
    pub fn launch(
        source: IpAddr,
        target: SocketAddr,
        idle: usize,
        flood: usize,
        pause: Duration,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        const KINDS: [Idle; 4] = [
            Idle::Tls,
            Idle::H2Preface,
            Idle::H2AfterRequest,
            Idle::H2IncompleteHead,
        ];
        let opened = Arc::new(AtomicUsize::new(0));
        let kinds = (0..idle)
            .map(|i| KINDS[i % KINDS.len()])
            .chain(std::iter::repeat_n(Idle::Handshake, flood));
        let tasks = kinds
            .map(|kind| {
                let tls = Arc::clone(&tls);
                let opened = Arc::clone(&opened);
                tokio::spawn(async move {
                    loop {
                        opened.fetch_add(1, Ordering::Relaxed);
                        let _ = hold(source, target, kind, Arc::clone(&tls)).await;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self { tasks, opened }
    }
}

/// Latencies of successful polls, and the failures (with why).
#[derive(Debug, Default)]
pub struct Polls {
    pub ok: Vec<Duration>,
    pub failed: Vec<String>,
}

impl Polls {
    /// The `q` quantile (0..=1) of the successful polls.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.ok.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index]
    }
}

/// Polls `request` (raw HTTP/1.1 bytes with `Connection: close`) from `source` on a new TLS 1.2
/// connection each time, like the SaaS poller, every `every` for `count` polls; a poll must
/// answer `200` within `timeout`.
pub async fn poll(
    source: IpAddr,
    target: SocketAddr,
    request: &[u8],
    count: usize,
    every: Duration,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> Polls {
    let connector = TlsConnector::from(tls);
    let mut polls = Polls::default();
    for _ in 0..count {
        let started = Instant::now();
        let attempt = async {
            let tcp = connect_from(source, target)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
            let mut tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tls.write_all(request)
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut reply = Vec::new();
            let _ = tls.read_to_end(&mut reply).await;
            let head = String::from_utf8_lossy(&reply[..reply.len().min(12)]).into_owned();
            if head.starts_with("HTTP/1.1 200") {
                Ok(())
            } else {
                Err(format!("answer {head:?}"))
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(())) => polls.ok.push(started.elapsed()),
            Ok(Err(e)) => polls.failed.push(e),
            Err(_) => polls.failed.push(format!("no answer within {timeout:?}")),
        }
        let spent = started.elapsed();
        if spent < every {
            tokio::time::sleep(every - spent).await;
        }
    }
    polls
}
