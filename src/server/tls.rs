//! The service's TLS settings: versions, suites, ALPN, and the identity from the runtime's
//! [`CertSwitch`].

use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::version::{TLS12, TLS13};
use rustls::ServerConfig;

use crate::runtime::identity::CertSwitch;

/// rustls' default suites, with the SHA-256 ones first: the key schedule of every handshake is
/// HKDF with the suite's hash, and SHA-384 made it a fifth of a handshake's CPU here
/// (BENCHMARKS.md). AES-128-GCM is as strong as the rest of the handshake.
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        suite
            .suite()
            .as_str()
            .is_some_and(|name| name.contains("SHA384"))
    });
    provider
}

/// TLS 1.3 and 1.2, HTTP/2 and HTTP/1.1 by ALPN, the certificate from `switch`; the server's
/// order of cipher suites wins.
pub fn server_config(switch: Arc<CertSwitch>) -> Result<Arc<ServerConfig>, rustls::Error> {
    config(switch, &[b"h2", b"http/1.1"])
}

/// The admin API's: as the service's, HTTP/1.1 only.
pub fn api_config(switch: Arc<CertSwitch>) -> Result<Arc<ServerConfig>, rustls::Error> {
    config(switch, &[b"http/1.1"])
}

fn config(switch: Arc<CertSwitch>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&TLS13, &TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(switch);
    config.ignore_client_order = true;
    // One TLS 1.3 ticket (rustls sends two by default): a poller reconnects once per poll, so
    // one resumption is all it can use, and each ticket costs a key derivation and a write.
    config.send_tls13_tickets = 1;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
