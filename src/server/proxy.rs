//! The PROXY protocol (v1 text and v2 binary) header that an L4 load balancer puts before the
//! TLS bytes to name the real client. Read byte-exactly so no TLS byte is consumed.

use std::net::IpAddr;

use ppp::{v1, v2, HeaderResult};
use tokio::io::{AsyncRead, AsyncReadExt};

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header (the specification's bound).
const V1_MAX: usize = 107;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
}

/// Reads one PROXY header; the client address it names, or `None` for `UNKNOWN`/`LOCAL`
/// (health checks of the balancer itself).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<IpAddr>, ProxyError> {
    let mut buf = vec![0u8; 12];
    stream.read_exact(&mut buf).await?;
    if buf == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        stream.read_exact(&mut fixed).await?;
        buf.extend_from_slice(&fixed);
        let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        let start = buf.len();
        buf.resize(start + len, 0);
        stream.read_exact(&mut buf[start..]).await?;
    } else if buf.starts_with(b"PROXY ") {
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(ProxyError::Malformed(
                    "v1 header longer than 107 bytes".into(),
                ));
            }
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await?;
            buf.push(byte[0]);
        }
    } else {
        return Err(ProxyError::Missing);
    }
    match HeaderResult::parse(&buf) {
        HeaderResult::V1(Ok(header)) => Ok(match header.addresses {
            v1::Addresses::Tcp4(a) => Some(IpAddr::V4(a.source_address)),
            v1::Addresses::Tcp6(a) => Some(IpAddr::V6(a.source_address)),
            v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(header)) => Ok(match (header.command, header.addresses) {
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => Some(IpAddr::V4(a.source_address)),
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => Some(IpAddr::V6(a.source_address)),
            _ => None,
        }),
        HeaderResult::V1(Err(e)) => Err(ProxyError::Malformed(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<IpAddr>, ProxyError>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        let result = read_header(&mut cursor).await;
        let position = usize::try_from(cursor.position()).unwrap_or(0);
        (result, bytes[position..].to_vec())
    }

    #[tokio::test]
    async fn v1_and_v2_leave_the_tls_bytes_alone() {
        let tls = b"\x16\x03\x01rest";
        let v1 = [&b"PROXY TCP4 198.51.100.7 10.0.0.1 4444 8443\r\n"[..], tls].concat();
        let (ip, rest) = read(&v1).await;
        assert_eq!(ip.ok().flatten(), "198.51.100.7".parse().ok());
        assert_eq!(rest, tls);

        let header = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (
                "[2001:db8::7]:4444"
                    .parse::<std::net::SocketAddr>()
                    .unwrap_or_else(|e| panic!("{e}")),
                "[2001:db8::1]:8443"
                    .parse::<std::net::SocketAddr>()
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
        let (ip, rest) = read(&[&header[..], tls].concat()).await;
        assert_eq!(ip.ok().flatten(), "2001:db8::7".parse().ok());
        assert_eq!(rest, tls);

        let (ip, rest) = read(&[&b"PROXY UNKNOWN\r\n"[..], tls].concat()).await;
        assert!(matches!(ip, Ok(None)));
        assert_eq!(rest, tls);
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_header() {
        let (r, _) = read(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00").await;
        assert!(matches!(r, Err(ProxyError::Missing)));
        let long = [&b"PROXY TCP4 "[..], &[b'1'; 200]].concat();
        assert!(matches!(read(&long).await.0, Err(ProxyError::Malformed(_))));
        assert!(matches!(
            read(b"PROXY TCP4 not an address\r\n").await.0,
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(read(b"PROXY").await.0, Err(ProxyError::Io(_))));
    }
}
