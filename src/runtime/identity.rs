//! The server's own TLS identity: loaded from PEM, checked against its key, and swappable at
//! run time so that a renewed certificate is presented to the next handshake.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

/// The server's certificate or key cannot be used; names the file at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("TLS {file}: {message}")]
pub struct TlsError {
    pub file: PathBuf,
    pub message: String,
}

/// A loaded certificate chain and key, with what operators want to know about it.
pub struct Identity {
    pub certified: Arc<CertifiedKey>,
    /// Subject of the leaf certificate.
    pub subject: String,
    /// Expiry of the leaf certificate.
    pub not_after: OffsetDateTime,
    /// The leaf's subject alternative names (DNS names lowercased, IP addresses), which the
    /// admin API takes as its own names by default.
    pub names: Vec<String>,
}

/// Reads the PEM chain (leaf first) and private key; fails when the key is not the leaf's.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let cert_err = |message: String| TlsError {
        file: cert.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(format!("cannot read the certificate chain: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("cannot read the certificate chain: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| cert_err("holds no PEM CERTIFICATE block".into()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| cert_err(format!("the first certificate does not parse: {e}")))?;
    let subject = parsed.subject().to_string();
    let not_after = parsed.validity().not_after.to_datetime();
    let names = leaf_names(&parsed);
    // rustls' key errors never carry key material.
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError {
        file: key.to_owned(),
        message: format!("cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    let provider = aws_lc_rs::default_provider();
    let certified =
        CertifiedKey::from_der(chain, private_key, &provider).map_err(|e| TlsError {
            file: key.to_owned(),
            message: format!(
                "the private key cannot serve the certificate {} ({e}): is it the matching key?",
                cert.display()
            ),
        })?;
    Ok(Identity {
        certified: Arc::new(certified),
        subject,
        not_after,
        names,
    })
}

/// The subject alternative names of the leaf of the PEM chain at `cert` (the key is not read:
/// `audit verify` checks signatures against the API's names on a host without it).
pub fn certificate_names(cert: &Path) -> Result<Vec<String>, TlsError> {
    let cert_err = |message: String| TlsError {
        file: cert.to_owned(),
        message,
    };
    let leaf = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(format!("cannot read the certificate chain: {e}")))?
        .next()
        .ok_or_else(|| cert_err("holds no PEM CERTIFICATE block".into()))?
        .map_err(|e| cert_err(format!("cannot read the certificate chain: {e}")))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf)
        .map_err(|e| cert_err(format!("the first certificate does not parse: {e}")))?;
    Ok(leaf_names(&parsed))
}

/// DNS names (lower case) and IP addresses of a certificate's subject alternative names.
fn leaf_names(parsed: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    x509_parser::extensions::GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An iPAddress SAN as an authority writes it (IPv6 in brackets).
fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(format!(
            "[{}]",
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)
        )),
        _ => None,
    }
}

/// Presents whichever identity was stored last.
pub struct CertSwitch {
    current: ArcSwap<CertifiedKey>,
    names: ArcSwap<Vec<String>>,
}

impl CertSwitch {
    /// Starts with `identity`.
    pub fn new(identity: &Identity) -> Self {
        Self {
            current: ArcSwap::new(Arc::clone(&identity.certified)),
            names: ArcSwap::from_pointee(identity.names.clone()),
        }
    }

    /// Presents `identity` from the next handshake on.
    pub fn store(&self, identity: &Identity) {
        self.current.store(Arc::clone(&identity.certified));
        self.names.store(Arc::new(identity.names.clone()));
    }

    /// The subject alternative names of the certificate presented now.
    pub fn names(&self) -> Arc<Vec<String>> {
        self.names.load_full()
    }
}

impl fmt::Debug for CertSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSwitch").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertSwitch {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
