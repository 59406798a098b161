//! The `X-DB-Certificate` header → a verified RSA public key for exactly one instance.
//!
//! Chain validation is rustls-webpki's (signatures really verified against the configured
//! roots); x509-parser reads the fields webpki does not expose (validity, key, Common Name).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::public_key::PublicKey;

use crate::cache::BoundedCache;
use crate::protocol::InstanceName;
use crate::wrap::RecipientKey;

mod checked;
mod error;
mod fingerprint;
mod header;
mod roots;
use checked::Checked;
pub use error::CertError;
pub use fingerprint::Fingerprint;
pub use header::{decode_base64, decode_header, single_header};
pub use roots::RootInfo;

/// The header the SaaS sends its database certificate in.
pub const HEADER: &str = "x-db-certificate";

/// The largest RSA modulus accepted (aws-lc's limit; larger keys are also a cheap CPU attack).
pub const MAX_RSA_BITS: usize = 8192;

/// The smallest `min_rsa_bits` a configuration may ask for.
pub const MIN_RSA_BITS_FLOOR: usize = 2048;

/// Verified certificates kept per set of roots (a few per instance is the steady state).
pub const CERT_CACHE_ENTRIES: usize = 1024;

/// Base64 of a DER certificate longer than this is refused before decoding (a real one is ~2 KiB).
pub const MAX_HEADER_LEN: usize = 16 * 1024;

/// Who a certificate is, for logs: known as soon as it parses, even when it is then refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// Fingerprint of the DER bytes.
    pub sha256: Fingerprint,
    /// The serial number, colon-separated hex as OpenSSL prints it.
    pub serial: String,
}

/// A certificate that passed every check for one instance.
#[derive(Debug)]
pub struct VerifiedCert {
    pub identity: CertIdentity,
    pub recipient: Arc<RecipientKey>,
    pub not_after: OffsetDateTime,
    /// Subject of the configured root (or intermediate) that verified it.
    pub verified_by: String,
    /// Why that root is in doubt (its file failed to reload): the request answers 503.
    pub trust_doubt: Option<String>,
}

/// A refused certificate, with its identity when it parsed far enough to have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Boxed: a refusal is the rare path, and the `Result` of every check stays small.
    pub identity: Option<Box<CertIdentity>>,
    pub error: CertError,
}

/// Why the configured roots cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust root file {file}: {message}")]
    File { file: PathBuf, message: String },
    #[error("no trust roots are configured: [trust] roots must name at least one PEM file")]
    Empty,
}

/// The roots that may sign database certificates, and the rules a certificate must pass.
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    roots: Vec<RootInfo>,
    min_rsa_bits: usize,
    /// Verified certificates by the SHA-256 of their header bytes.
    cache: BoundedCache<Fingerprint, Arc<Checked>>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field("roots", &self.roots)
            .field("min_rsa_bits", &self.min_rsa_bits)
            .finish()
    }
}

impl TrustStore {
    /// A store over `roots` (those not in doubt first, so that webpki prefers them).
    fn assemble(mut roots: Vec<roots::Root>, min_rsa_bits: usize) -> Self {
        roots.sort_by_key(|r| r.info.doubt.is_some());
        let (anchors, roots) = roots.into_iter().map(|r| (r.anchor, r.info)).unzip();
        Self {
            anchors,
            roots,
            min_rsa_bits,
            cache: BoundedCache::new(CERT_CACHE_ENTRIES),
        }
    }

    /// The configured roots and intermediates.
    pub fn roots(&self) -> &[RootInfo] {
        &self.roots
    }

    /// The smallest RSA modulus accepted.
    pub fn min_rsa_bits(&self) -> usize {
        self.min_rsa_bits
    }

    /// Every check of the contract, for a certificate presented for `instance` at `now`.
    pub fn verify(
        &self,
        der: &[u8],
        instance: &InstanceName,
        now: OffsetDateTime,
    ) -> Result<VerifiedCert, Rejected> {
        self.checked(der)?.finish(instance, now)
    }

    /// As `verify`, for the header value as sent. A certificate seen before is not parsed or
    /// verified again: the cache, keyed by the fingerprint of the header bytes, holds what passed
    /// the checks that depend on neither the clock nor the instance; the validity window and the
    /// Common Name are checked at every request. The cache belongs to this set of roots, so a
    /// reload of the roots starts an empty one.
    pub fn verify_header(
        &self,
        value: &[u8],
        instance: &InstanceName,
        now: OffsetDateTime,
    ) -> Result<VerifiedCert, Rejected> {
        let key = Fingerprint::of(value);
        if let Some(checked) = self.cache.get(&key) {
            return checked.finish(instance, now);
        }
        let der = decode_base64(value).map_err(|error| Rejected {
            identity: None,
            error,
        })?;
        let checked = Arc::new(self.checked(&der)?);
        self.cache.insert(key, Arc::clone(&checked));
        checked.finish(instance, now)
    }

    /// How many verified certificates the cache holds.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The checks that depend on neither the clock nor the instance: parsing, the chain to a
    /// configured root, the public key.
    fn checked(&self, der: &[u8]) -> Result<Checked, Rejected> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| Rejected {
            identity: None,
            error: CertError::NotX509(der_problem(der, &e)),
        })?;
        let identity = CertIdentity {
            sha256: Fingerprint::of(der),
            serial: cert.raw_serial_as_string(),
        };
        let reject = |error: CertError| Rejected {
            identity: Some(Box::new(identity.clone())),
            error,
        };
        if !rest.is_empty() {
            return Err(reject(CertError::NotX509(format!(
                "{} bytes follow the certificate",
                rest.len()
            ))));
        }
        let root = self.verify_chain(der, &cert).map_err(reject)?;
        let recipient = self.check_key(&cert).map_err(reject)?;
        let common_name = common_name(&cert);
        // webpki applies a root's DNS name constraints to the SAN only; the identity served on
        // is the Common Name (`tse_<instance>`), so they bind it too.
        if let Ok(cn) = &common_name {
            if !root.permits_dns(cn) {
                return Err(reject(CertError::NameConstraints {
                    name: format!("{:?}", printable(cn)),
                    root: root.subject.clone(),
                }));
            }
        }
        Ok(Checked {
            not_before: asn1_time(cert.validity().not_before),
            not_after: asn1_time(cert.validity().not_after),
            common_name,
            recipient: Arc::new(recipient),
            verified_by: root.subject.clone(),
            root_not_after: root.not_after,
            trust_doubt: root.doubt.clone(),
            identity,
        })
    }

    /// Signature chain to a configured anchor, and the extended key usage if present.
    ///
    /// The chain is judged at the certificate's own `notBefore`, and the validity window against
    /// the real clock afterwards (`check_validity`): webpki checks the window first, and a caller
    /// holding an expired certificate from a foreign issuer should hear about the issuer.
    fn verify_chain(&self, der: &[u8], cert: &X509Certificate<'_>) -> Result<&RootInfo, CertError> {
        let der = CertificateDer::from(der);
        let ee = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| CertError::NotX509(describe_webpki(&e)))?;
        let at = UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(cert.validity().not_before.timestamp()).unwrap_or(0),
        ));
        let path = ee
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &[],
                at,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|e| match e {
                // A configured root of that name whose key did not make (or cannot have made)
                // the signature is no issuer either.
                webpki::Error::UnknownIssuer
                | webpki::Error::InvalidSignatureForPublicKey
                | webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
                    CertError::UnknownIssuer {
                        issuer: format!("{:?}", printable(&cert.issuer().to_string())),
                    }
                }
                other => CertError::Chain(describe_webpki(&other)),
            })?;
        let anchor = path.anchor();
        self.anchors
            .iter()
            .position(|a| a == anchor)
            .and_then(|i| self.roots.get(i))
            .ok_or_else(|| CertError::Chain("no configured root matches the chain's anchor".into()))
    }

    fn check_key(&self, cert: &X509Certificate<'_>) -> Result<RecipientKey, CertError> {
        let spki = cert.public_key();
        let rsa = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa,
            Ok(PublicKey::EC(_)) => return Err(CertError::NotRsa("an elliptic-curve key".into())),
            Ok(PublicKey::DSA(_)) => return Err(CertError::NotRsa("a DSA key".into())),
            _ => {
                return Err(CertError::NotRsa(format!(
                    "of algorithm {}",
                    spki.algorithm.algorithm
                )))
            }
        };
        let bits = modulus_bits(rsa.modulus);
        if bits < self.min_rsa_bits {
            return Err(CertError::RsaTooShort {
                bits,
                min: self.min_rsa_bits,
            });
        }
        if bits > MAX_RSA_BITS {
            return Err(CertError::RsaTooLong(bits));
        }
        RecipientKey::from_spki_der(spki.raw).map_err(|_| CertError::UnusableKey)
    }
}

/// The subject's one Common Name, or a description of why there is not exactly one string.
fn common_name(cert: &X509Certificate<'_>) -> Result<String, String> {
    let names: Vec<_> = cert.subject().iter_common_name().collect();
    match names.as_slice() {
        [] => Err("absent".to_owned()),
        [one] => one
            .as_str()
            .map(str::to_owned)
            .map_err(|_| "not a string".to_owned()),
        many => Err(format!("given {} times", many.len())),
    }
}

/// What is wrong with bytes that are not an X.509 certificate, for the caller (never the
/// parser's own wording, such as `NomError(Eof)`).
fn der_problem(der: &[u8], e: &x509_parser::nom::Err<x509_parser::error::X509Error>) -> String {
    tracing::debug!(error = %e, "certificate parse error");
    if der.starts_with(b"-----BEGIN") {
        "the header holds the base64 of PEM text: send the base64 of the DER bytes instead".into()
    } else if der.first() != Some(&0x30) {
        "the decoded bytes are not DER (a certificate starts with byte 0x30): send the base64 of the certificate's DER bytes".into()
    } else if matches!(e, x509_parser::nom::Err::Incomplete(_)) || e.to_string().contains("Eof") {
        "the DER bytes end before the certificate does: the value was cut short".into()
    } else {
        "the DER bytes are not a well-formed X.509 certificate: it was altered, or is not a certificate".into()
    }
}

/// Bits of a big-endian modulus, leading zero bytes and bits not counted.
pub(crate) fn modulus_bits(modulus: &[u8]) -> usize {
    let modulus = match modulus.iter().position(|&b| b != 0) {
        Some(first) => &modulus[first..],
        None => return 0,
    };
    modulus.len() * 8 - modulus[0].leading_zeros() as usize
}

fn asn1_time(t: x509_parser::time::ASN1Time) -> OffsetDateTime {
    t.to_datetime()
}

/// Cuts caller-supplied text to a sane length for messages and logs (quoting it with `{:?}`
/// then escapes control characters, so it cannot forge log lines).
fn printable(s: &str) -> &str {
    match s.char_indices().nth(128) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

fn describe_webpki(e: &webpki::Error) -> String {
    match e {
        webpki::Error::CaUsedAsEndEntity => {
            "it is a CA certificate, not a database certificate".into()
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "its extended key usage does not include clientAuth".into()
        }
        webpki::Error::UnsupportedCertVersion => "only X.509 v3 certificates are accepted".into(),
        webpki::Error::UnsupportedCriticalExtension => {
            "it carries a critical extension that is not understood".into()
        }
        webpki::Error::BadDer | webpki::Error::BadDerTime | webpki::Error::TrailingData(_) => {
            "malformed DER".into()
        }
        other => format!("chain validation failed ({other:?})"),
    }
}

/// Reads every certificate of one PEM file (for `check` and tooling).
pub fn read_pem_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(file)
        .map_err(|e| e.to_string())?
        .map(|c| c.map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests;
