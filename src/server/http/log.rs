//! The one audit line of a request, and the request id that names it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;

use super::record::Record;
use crate::protocol::InstanceName;
use crate::server::peer::ConnInfo;

/// 64 random bits as 16 hex digits.
pub(super) fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = (nanos as u64).to_be_bytes();
    }
    hex::encode(bytes)
}

/// The one audit line of a request. Caller-supplied text (a path that did not parse) is quoted
/// and cut short.
#[allow(clippy::too_many_arguments)]
pub(super) fn log_request(
    request_id: &str,
    conn: Option<ConnInfo>,
    method: &str,
    raw_path: &str,
    status: StatusCode,
    reason: &str,
    record: &Record,
    detail: Option<&str>,
    latency: Duration,
) {
    let peer: Option<SocketAddr> = conn.map(|c| c.peer);
    // The client, when it is not the TCP peer (a trusted proxy named it).
    let client = record.client.filter(|ip| Some(*ip) != peer.map(|p| p.ip()));
    // A path that parsed is exactly /kek/<instance>/<key_id>, which the line already says.
    let path = record
        .instance
        .is_none()
        .then(|| match raw_path.char_indices().nth(200) {
            Some((end, _)) => &raw_path[..end],
            None => raw_path,
        });
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: "ccs_endpoint::request",
                $level,
                request_id,
                peer = peer.map(tracing::field::display),
                client = client.map(tracing::field::display),
                method,
                path = path.map(tracing::field::debug),
                instance = record.instance.as_ref().map(InstanceName::as_str),
                key_id = record.key_id,
                status = status.as_u16(),
                reason,
                cert_sha256 = record.cert.as_ref().map(|c| tracing::field::display(c.sha256)),
                cert_serial = record.cert.as_ref().map(|c| c.serial.as_str()),
                root = record.verified_by.as_deref(),
                kcv = record.kcv.map(tracing::field::display),
                valid_until = record.valid_until.as_deref(),
                error_id = status.is_server_error().then_some(request_id),
                detail,
                latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
                "request"
            )
        };
    }
    if status.is_server_error() {
        event!(tracing::Level::ERROR);
    } else if record.kill_switch {
        event!(tracing::Level::WARN);
    } else {
        event!(tracing::Level::INFO);
    }
}
