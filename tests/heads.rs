//! Every answer goes through the one error mapping: request heads hyper would have refused
//! with a bare status (too large, malformed, a fragment) get a JSON error, a request id, a log
//! line and a `ccs_requests_total` series; a 60 KB header is read as a 431, not a reset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TLS12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;

/// Writes `raw` on a new TLS 1.2 connection and reads to the end; the read must end cleanly
/// (no reset).
async fn exchange(server: &TestServer, raw: &[u8]) -> Reply {
    let connector = tokio_rustls::TlsConnector::from(client_config(TLS12));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(raw).await.unwrap();
    let mut bytes = Vec::new();
    let read = tls.read_to_end(&mut bytes).await;
    assert!(
        read.is_ok(),
        "the connection ended with {read:?} after {} bytes",
        bytes.len()
    );
    parse_reply(&bytes, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_heads_get_json_errors_a_request_id_and_a_series() {
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    let h = header(&db_cert("ccsdemo"));

    let padding = "a".repeat(60 * 1024);
    let big = request_bytes(
        "GET",
        "/kek/ccsdemo/1",
        &[("X-DB-Certificate", &h), ("X-Padding", &padding)],
    );
    let reply = exchange(&server, big.as_bytes()).await;
    assert_eq!(reply.status, 431, "{}", reply.body);
    assert!(
        reply.error().contains("longer than 16384 bytes"),
        "{}",
        reply.body
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply.header("x-request-id").is_some());

    for (raw, want) in [
        (
            "GET /kek/ccsdemo/1 HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_owned(),
            "header name",
        ),
        (
            request_bytes("GET", "/kek/ccsdemo/1#top", &[("X-DB-Certificate", &h)]),
            "fragment",
        ),
        ("GET /kek/ccsdemo/1 HTTP/7.0\r\n\r\n".to_owned(), "HTTP/1.1"),
    ] {
        let reply = exchange(&server, raw.as_bytes()).await;
        assert_eq!(reply.status, 400, "{want}: {}", reply.body);
        assert!(reply.error().starts_with("Bad request: "), "{}", reply.body);
        assert!(reply.error().contains(want), "{want}: {}", reply.body);
    }

    // Good heads still go through, two on one connection.
    let two = format!(
        "{}{}",
        request_bytes("GET", "/healthz", &[]).replace("Connection: close\r\n", ""),
        request_bytes("GET", "/kek/ccsdemo/1", &[("X-DB-Certificate", &h)])
    );
    let connector = tokio_rustls::TlsConnector::from(client_config(TLS12));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(two.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let _ = tls.read_to_end(&mut bytes).await;
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");

    let (_, m) = server.admin_get("/metrics").await;
    assert_eq!(
        sample(
            &m,
            "ccs_requests_total{status=\"431\",reason=\"head_too_large\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "ccs_requests_total{status=\"400\",reason=\"bad_request_head\"}"
        ),
        Some(3.0)
    );
}
