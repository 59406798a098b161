//! Unit tables for the head guard.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What hyper would read through the guard from `sent`, and the refusal, if any.
async fn through(sent: &[u8], max: usize) -> (Vec<u8>, Option<Refused>) {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    client
        .write_all(sent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let refusals = Refusals::new();
    let mut guard = HeadGuard::new(server, max, Arc::clone(&refusals));
    // Until end-of-file, or a pause (after a refusal the guard gives nothing more).
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(200), guard.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    let refused = refusals
        .refused
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    (seen, refused)
}

#[tokio::test]
async fn good_heads_pass_byte_for_byte_and_bad_ones_never_reach_hyper() {
    let two = b"GET /kek/a/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(through(two, 8192).await, (two.to_vec(), None));
    let body = b"POST /kek/a/1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGARBAGE";
    assert_eq!(through(body, 8192).await, (body.to_vec(), None));
    let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00";
    assert_eq!(through(h2, 8192).await, (h2.to_vec(), None));

    let big = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(60_000));
    let rows: [(&[u8], &str); 7] = [
        (big.as_bytes(), "TooLarge"),
        (b"GET /kek/a/1#x HTTP/1.1\r\n\r\n", "fragment"),
        (
            b"GET /kek/a/1 HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "header name",
        ),
        (b"GET /kek/a/1 HTTP/3.0\r\n\r\n", "HTTP/1.0 or HTTP/1.1"),
        (b"GET /a\x7fb HTTP/1.1\r\n\r\n", "request"),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "twice",
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both",
        ),
    ];
    for (sent, why) in rows {
        let (seen, refused) = through(sent, 16 * 1024).await;
        let text = String::from_utf8_lossy(&seen);
        assert!(
            text.starts_with("GET / HTTP/1.1\r\nhost: refused\r\n") && text.contains(MARK),
            "{why}: {text}"
        );
        let refused = format!("{refused:?}");
        assert!(refused.contains(why), "{why}: {refused}");
    }
}

#[test]
fn only_the_connections_own_token_marks_a_refusal() {
    let refusals = Refusals::new();
    *refusals.refused.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(Refused::Malformed("x".into()));
    let mut headers = http::HeaderMap::new();
    headers.insert(MARK, http::HeaderValue::from_static("guess"));
    assert_eq!(refusals.take(&headers), None);
    headers.insert(
        MARK,
        http::HeaderValue::from_str(&refusals.token).unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(refusals.take(&headers).is_some());
}
