//! What the operator commands use: key-store editing, the probe, certificate inspection,
//! `init`, and the development PKI.

pub mod api_client;
pub mod dev;
pub mod escrow;
pub mod init;
pub mod inspect;
pub mod keyfile;
pub mod keys;
pub mod pki;
pub mod probe;
pub mod signers_edit;

use std::path::Path;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

/// An RSA private key for OAEP decryption from a PKCS#8 PEM file (a database's key for
/// `probe`, an escrow key for `keys import --from-escrow`), and its public half as
/// SubjectPublicKeyInfo DER. The error says what is wrong with the file, never its content.
pub fn read_rsa_private_key(path: &Path) -> Result<(OaepPrivateDecryptingKey, Vec<u8>), String> {
    let key = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a PEM private key: {e}"))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = key else {
        return Err(
            "is not PKCS#8 (\"BEGIN PRIVATE KEY\"); convert it with `openssl pkcs8 -topk8 -nocrypt`"
                .into(),
        );
    };
    let key = PrivateDecryptingKey::from_pkcs8(pkcs8.secret_pkcs8_der())
        .map_err(|_| "is not an RSA private key of 2048 to 8192 bits".to_owned())?;
    let spki = AsDer::<PublicKeyX509Der>::as_der(&key.public_key())
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| "its public key cannot be encoded".to_owned())?;
    let key =
        OaepPrivateDecryptingKey::new(key).map_err(|_| "cannot be used for RSA-OAEP".to_owned())?;
    Ok((key, spki))
}

/// This program as the shell found it (the path `cargo run` used, or the bare name found on
/// `PATH`), shell-quoted: the commands the binary prints then run as pasted.
pub fn invoked_as() -> String {
    match std::env::args_os().next() {
        Some(arg) if !arg.is_empty() => shell_quote(Path::new(&arg)),
        _ => "ccs-endpoint".to_owned(),
    }
}

/// `path` as a shell word: as it is when plain, single-quoted otherwise.
pub fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Why a TLS connection to an endpoint could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// The address does not resolve, or TCP fails.
    Connect(String),
    /// The host cannot be a TLS server name.
    Name(String),
    /// The TLS handshake fails.
    Tls(String),
}

/// TCP to `host:port` (every address it resolves to, in turn), then TLS with `config`.
pub async fn connect_tls(
    host: &str,
    port: u16,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ConnectError> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| ConnectError::Connect(e.to_string()))?
        .collect();
    let tcp = tokio::net::TcpStream::connect(addrs.as_slice())
        .await
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| ConnectError::Name(format!("bad host name {host:?}: {e}")))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls(e.to_string()))
}
