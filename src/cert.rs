//! The `X-DB-Certificate` header → a verified RSA public key for exactly one instance.
//!
//! Chain validation is rustls-webpki's (signatures really verified against the configured
//! roots); x509-parser reads the fields webpki does not expose (validity, key, Common Name).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::public_key::PublicKey;

use crate::protocol::InstanceName;
use crate::wrap::RecipientKey;

/// The header the SaaS sends its database certificate in.
pub const HEADER: &str = "x-db-certificate";

/// The largest RSA modulus accepted (aws-lc's limit; larger keys are also a cheap CPU attack).
pub const MAX_RSA_BITS: usize = 8192;

/// The smallest `min_rsa_bits` a configuration may ask for.
pub const MIN_RSA_BITS_FLOOR: usize = 2048;

/// Base64 of a DER certificate longer than this is refused before decoding (a real one is ~2 KiB).
pub const MAX_HEADER_LEN: usize = 16 * 1024;

/// Standard alphabet; padding optional, since some clients strip it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a certificate was refused. Every variant answers 401; the message is for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("The X-DB-Certificate header is missing: send the base64 of the database certificate's DER bytes")]
    Missing,
    #[error("The X-DB-Certificate header is empty: send the base64 of the database certificate's DER bytes")]
    Empty,
    #[error("More than one X-DB-Certificate header was sent: send exactly one")]
    Multiple,
    #[error("The X-DB-Certificate header is too long ({0} bytes; at most {MAX_HEADER_LEN})")]
    TooLong(usize),
    #[error("The X-DB-Certificate header is not valid base64: {0}")]
    NotBase64(String),
    #[error("The X-DB-Certificate header does not hold a parsable X.509 certificate: {0}")]
    NotX509(String),
    #[error("The database certificate is invalid: not issued by a configured trust root (issuer {issuer})")]
    UnknownIssuer { issuer: String },
    #[error("The database certificate is invalid: {0}")]
    Chain(String),
    #[error("The database certificate is invalid: expired on {}", rfc3339(.0))]
    Expired(OffsetDateTime),
    #[error("The database certificate is invalid: not valid before {}", rfc3339(.0))]
    NotYetValid(OffsetDateTime),
    #[error("The database certificate is invalid: its public key is {0}; an RSA key is required")]
    NotRsa(String),
    #[error("The database certificate is invalid: its RSA key has {bits} bits; at least {min} are required")]
    RsaTooShort { bits: usize, min: usize },
    #[error("The database certificate is invalid: its RSA key has {0} bits; at most {MAX_RSA_BITS} are supported")]
    RsaTooLong(usize),
    #[error(
        "The database certificate is invalid: its RSA public key cannot be used for encryption"
    )]
    UnusableKey,
    #[error("The database certificate is invalid: its subject Common Name is {found}, but instance {instance:?} is served only to {expected:?}")]
    CommonName {
        found: String,
        expected: String,
        instance: String,
    },
}

impl CertError {
    /// A short, stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CertError::Missing => "cert_missing",
            CertError::Empty => "cert_empty",
            CertError::Multiple => "cert_multiple",
            CertError::TooLong(_) => "cert_too_long",
            CertError::NotBase64(_) => "cert_not_base64",
            CertError::NotX509(_) => "cert_not_x509",
            CertError::UnknownIssuer { .. } => "cert_unknown_issuer",
            CertError::Chain(_) => "cert_chain_invalid",
            CertError::Expired(_) => "cert_expired",
            CertError::NotYetValid(_) => "cert_not_yet_valid",
            CertError::NotRsa(_) => "cert_not_rsa",
            CertError::RsaTooShort { .. } => "cert_rsa_too_short",
            CertError::RsaTooLong(_) => "cert_rsa_too_long",
            CertError::UnusableKey => "cert_key_unusable",
            CertError::CommonName { .. } => "cert_wrong_cn",
        }
    }
}

fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Decodes the header value(s) into DER bytes. Exactly one non-empty value is accepted.
pub fn decode_header<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<Vec<u8>, CertError> {
    let value = values.next().ok_or(CertError::Missing)?;
    if values.next().is_some() {
        return Err(CertError::Multiple);
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(CertError::Empty);
    }
    if value.len() > MAX_HEADER_LEN {
        return Err(CertError::TooLong(value.len()));
    }
    BASE64
        .decode(value)
        .map_err(|e| CertError::NotBase64(e.to_string()))
}

/// Who a certificate is, for logs: known as soon as it parses, even when it is then refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// SHA-256 of the DER bytes, lower-case hex.
    pub sha256: String,
    /// The serial number, colon-separated hex as OpenSSL prints it.
    pub serial: String,
}

/// A certificate that passed every check for one instance.
#[derive(Debug)]
pub struct VerifiedCert {
    pub identity: CertIdentity,
    pub recipient: RecipientKey,
    pub not_after: OffsetDateTime,
    /// Subject of the configured root (or intermediate) that verified it.
    pub verified_by: String,
}

/// A refused certificate, with its identity when it parsed far enough to have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub identity: Option<CertIdentity>,
    pub error: CertError,
}

/// A configured root or intermediate, as `check` and the logs describe it.
#[derive(Debug, Clone)]
pub struct RootInfo {
    pub subject: String,
    pub not_after: OffsetDateTime,
    pub sha256: String,
    pub file: PathBuf,
    spki: Vec<u8>,
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
    /// Reads every certificate of every PEM file. Each must be a CA certificate; each becomes a
    /// trust anchor, so an intermediate in the bundle is trusted to issue directly.
    pub fn load(files: &[PathBuf], min_rsa_bits: usize) -> Result<Self, TrustError> {
        let mut certs = Vec::new();
        for file in files {
            let err = |message: String| TrustError::File {
                file: file.clone(),
                message,
            };
            let mut found = 0;
            let iter = CertificateDer::pem_file_iter(file).map_err(|e| err(e.to_string()))?;
            for cert in iter {
                certs.push((file.clone(), cert.map_err(|e| err(e.to_string()))?));
                found += 1;
            }
            if found == 0 {
                return Err(err("holds no PEM CERTIFICATE block".into()));
            }
        }
        Self::from_certs(certs, min_rsa_bits)
    }

    /// Builds a store from DER certificates, each with the file it came from.
    pub fn from_certs(
        certs: Vec<(PathBuf, CertificateDer<'static>)>,
        min_rsa_bits: usize,
    ) -> Result<Self, TrustError> {
        if certs.is_empty() {
            return Err(TrustError::Empty);
        }
        let mut anchors = Vec::with_capacity(certs.len());
        let mut roots = Vec::with_capacity(certs.len());
        for (index, (file, der)) in certs.iter().enumerate() {
            let err = |message: String| TrustError::File {
                file: file.clone(),
                message: format!("certificate {}: {message}", index + 1),
            };
            let (_, parsed) = x509_parser::parse_x509_certificate(der)
                .map_err(|e| err(format!("not a parsable X.509 certificate: {e}")))?;
            let subject = parsed.subject().to_string();
            let is_ca = parsed
                .basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|bc| bc.value.ca);
            if !is_ca {
                return Err(err(format!(
                    "{subject:?} is not a CA certificate (basicConstraints CA:TRUE is missing): only roots and intermediates belong in [trust] roots"
                )));
            }
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| err(format!("{subject:?} cannot be a trust anchor: {e}")))?;
            roots.push(RootInfo {
                subject,
                not_after: asn1_time(parsed.validity().not_after),
                sha256: sha256_hex(der),
                file: file.clone(),
                spki: anchor.subject_public_key_info.to_vec(),
            });
            anchors.push(anchor.to_owned());
        }
        Ok(Self {
            anchors,
            roots,
            min_rsa_bits,
        })
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
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| Rejected {
            identity: None,
            error: CertError::NotX509(e.to_string()),
        })?;
        let identity = CertIdentity {
            sha256: sha256_hex(der),
            serial: cert.raw_serial_as_string(),
        };
        let reject = |error: CertError| Rejected {
            identity: Some(identity.clone()),
            error,
        };
        if !rest.is_empty() {
            return Err(reject(CertError::NotX509(format!(
                "{} bytes follow the certificate",
                rest.len()
            ))));
        }
        let verified_by = self.verify_chain(der, &cert).map_err(reject)?;
        check_validity(&cert, now).map_err(reject)?;
        let recipient = self.check_key(&cert).map_err(reject)?;
        check_common_name(&cert, instance).map_err(reject)?;
        Ok(VerifiedCert {
            not_after: asn1_time(cert.validity().not_after),
            identity,
            recipient,
            verified_by,
        })
    }

    /// Signature chain to a configured anchor, and the extended key usage if present.
    ///
    /// The chain is judged at the certificate's own `notBefore`, and the validity window against
    /// the real clock afterwards (`check_validity`): webpki checks the window first, and a caller
    /// holding an expired certificate from a foreign issuer should hear about the issuer.
    fn verify_chain(&self, der: &[u8], cert: &X509Certificate<'_>) -> Result<String, CertError> {
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
                webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
                    CertError::UnknownIssuer {
                        issuer: format!("{:?}", printable(&cert.issuer().to_string())),
                    }
                }
                other => CertError::Chain(describe_webpki(&other)),
            })?;
        let spki = path.anchor().subject_public_key_info.as_ref();
        Ok(self
            .roots
            .iter()
            .find(|root| root.spki == spki)
            .map(|root| root.subject.clone())
            .unwrap_or_default())
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

fn check_validity(cert: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(), CertError> {
    let validity = cert.validity();
    let not_before = asn1_time(validity.not_before);
    let not_after = asn1_time(validity.not_after);
    if now < not_before {
        return Err(CertError::NotYetValid(not_before));
    }
    if now > not_after {
        return Err(CertError::Expired(not_after));
    }
    Ok(())
}

fn check_common_name(cert: &X509Certificate<'_>, instance: &InstanceName) -> Result<(), CertError> {
    let expected = instance.expected_common_name();
    let names: Vec<_> = cert.subject().iter_common_name().collect();
    let found = match names.as_slice() {
        [] => "absent".to_owned(),
        [one] => match one.as_str() {
            Ok(cn) if cn == expected => return Ok(()),
            Ok(cn) => format!("{:?}", printable(cn)),
            Err(_) => "not a string".to_owned(),
        },
        many => format!("given {} times", many.len()),
    };
    Err(CertError::CommonName {
        found,
        expected,
        instance: instance.as_str().to_owned(),
    })
}

/// Bits of a big-endian modulus, leading zero bytes and bits not counted.
fn modulus_bits(modulus: &[u8]) -> usize {
    let modulus = match modulus.iter().position(|&b| b != 0) {
        Some(first) => &modulus[first..],
        None => return 0,
    };
    modulus.len() * 8 - modulus[0].leading_zeros() as usize
}

fn asn1_time(t: x509_parser::time::ASN1Time) -> OffsetDateTime {
    t.to_datetime()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes))
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
mod tests {
    use super::*;

    #[test]
    fn header_decoding() {
        let one = |v: &'static [u8]| decode_header([v].into_iter());
        assert_eq!(decode_header(std::iter::empty()), Err(CertError::Missing));
        assert_eq!(one(b""), Err(CertError::Empty));
        assert_eq!(one(b"   "), Err(CertError::Empty));
        assert_eq!(
            decode_header([&b"AAAA"[..], &b"AAAA"[..]].into_iter()),
            Err(CertError::Multiple)
        );
        assert!(matches!(one(b"not base64!"), Err(CertError::NotBase64(_))));
        assert!(matches!(one(b"AA-_"), Err(CertError::NotBase64(_))));
        assert_eq!(one(b"AAEC"), Ok(vec![0, 1, 2]));
        assert_eq!(one(b"AAE="), Ok(vec![0, 1]));
        assert_eq!(one(b"AAE"), Ok(vec![0, 1]));
        let long = vec![b'A'; MAX_HEADER_LEN + 4];
        assert_eq!(
            decode_header([long.as_slice()].into_iter()),
            Err(CertError::TooLong(MAX_HEADER_LEN + 4))
        );
    }

    #[test]
    fn modulus_bit_lengths() {
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0]), 0);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0, 0x7f, 0]), 15);
        assert_eq!(modulus_bits(&[1]), 1);
    }

    fn fixture_der() -> Vec<u8> {
        let b64 = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/ccsdemo-db-certificate.b64"
        ));
        let Ok(b64) = b64 else {
            panic!("../shared/fixtures/ccsdemo-db-certificate.b64 is missing: CI runs with shared/ beside the repo");
        };
        decode_header([b64.as_slice()].into_iter()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn name(s: &str) -> InstanceName {
        InstanceName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_published_database_certificate_parses_and_is_refused_for_its_issuer() {
        let der = fixture_der();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_common_name(&cert, &name("ccsdemo")), Ok(()));
        assert!(check_common_name(&cert, &name("ccsdemo2")).is_err());
        let Ok(PublicKey::RSA(rsa)) = cert.public_key().parsed() else {
            panic!("the fixture holds an RSA key");
        };
        assert_eq!(modulus_bits(rsa.modulus), 2048);

        let root = crate::pki::ca("test root", crate::pki::KeyKind::Rsa2048)
            .unwrap_or_else(|e| panic!("{e}"));
        let trust = store(&[&root]);
        let rejected = trust
            .verify(&der, &name("ccsdemo"), OffsetDateTime::now_utc())
            .err()
            .unwrap_or_else(|| panic!("a foreign certificate was accepted"));
        assert_eq!(rejected.error.reason(), "cert_unknown_issuer");
        assert!(rejected
            .error
            .to_string()
            .contains("ServiceNow TSECSK Root CA - G1"));
        // Even after it expires, the issuer is what it hears about first.
        let later = OffsetDateTime::now_utc() + time::Duration::days(3650);
        let rejected = trust.verify(&der, &name("ccsdemo"), later).err();
        assert_eq!(
            rejected.map(|r| r.error.reason()),
            Some("cert_unknown_issuer")
        );
        let identity = trust
            .verify(&der, &name("ccsdemo"), later)
            .err()
            .and_then(|r| r.identity)
            .unwrap_or_else(|| panic!("a parsed certificate has an identity"));
        assert_eq!(
            identity.serial,
            "1c:46:c6:44:18:12:14:e2:36:b1:2b:14:63:c0:2f:c0:e1:28:b3:01"
        );
    }

    fn store(roots: &[&crate::pki::Issued]) -> TrustStore {
        let certs = roots
            .iter()
            .map(|r| {
                (
                    PathBuf::from("roots.pem"),
                    CertificateDer::from(r.cert_der().to_vec()),
                )
            })
            .collect();
        TrustStore::from_certs(certs, MIN_RSA_BITS_FLOOR).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn decisions() {
        use crate::pki::{self, KeyKind};
        let ok = |r: Result<pki::Issued, pki::Error>| r.unwrap_or_else(|e| panic!("{e}"));
        let root = ok(pki::ca("decision root", KeyKind::Rsa2048));
        let other_root = ok(pki::ca("decision root", KeyKind::Rsa2048));
        let trust = store(&[&root]);
        let params = |cn: &str| pki::database_params(cn).unwrap_or_else(|e| panic!("{e}"));
        let rsa = || {
            KeyKind::Rsa2048
                .generate()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let good = ok(pki::database(&root, "ccsdemo"));
        let ec = ok(root.issue(
            params("tse_ccsdemo"),
            KeyKind::EcP256.generate().unwrap_or_else(|e| panic!("{e}")),
        ));
        let ca_as_leaf = ok(root.issue(pki::ca_params("tse_ccsdemo"), rsa()));
        let impostor = ok(pki::database(&other_root, "ccsdemo"));
        let now = OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        let valid_from = good_not_before(&good);

        let rows: Vec<(&str, &pki::Issued, &str, OffsetDateTime, Option<&str>)> = vec![
            ("good", &good, "ccsdemo", now, None),
            (
                "good, another instance",
                &good,
                "ccsdemo2",
                now,
                Some("cert_wrong_cn"),
            ),
            (
                "good, instance in upper case",
                &good,
                "CCSDEMO",
                now,
                Some("cert_wrong_cn"),
            ),
            (
                "good, before notBefore",
                &good,
                "ccsdemo",
                valid_from - day,
                Some("cert_not_yet_valid"),
            ),
            (
                "good, after notAfter",
                &good,
                "ccsdemo",
                now + day * 800,
                Some("cert_expired"),
            ),
            ("EC key", &ec, "ccsdemo", now, Some("cert_not_rsa")),
            (
                "CA certificate",
                &ca_as_leaf,
                "ccsdemo",
                now,
                Some("cert_chain_invalid"),
            ),
            (
                "same-name root, other key",
                &impostor,
                "ccsdemo",
                now,
                Some("cert_unknown_issuer"),
            ),
            (
                "the root itself",
                &root,
                "ccsdemo",
                now,
                Some("cert_chain_invalid"),
            ),
        ];
        for (what, cert, instance, at, want) in rows {
            let got = trust.verify(cert.cert_der(), &name(instance), at);
            match (want, got) {
                (None, Ok(verified)) => {
                    assert_eq!(verified.recipient.bits(), 2048);
                    assert_eq!(
                        verified.verified_by,
                        "O=ccs-endpoint development, CN=decision root"
                    );
                    assert_eq!(verified.identity.sha256, sha256_hex(cert.cert_der()));
                }
                (Some(reason), Err(rejected)) => {
                    assert_eq!(
                        rejected.error.reason(),
                        reason,
                        "{what}: {}",
                        rejected.error
                    )
                }
                (want, got) => panic!("{what}: want {want:?}, got {:?}", got.map(|v| v.identity)),
            }
        }
        // Both roots configured: the impostor's own root now verifies it, the first still works.
        let both = store(&[&root, &other_root]);
        assert!(both
            .verify(impostor.cert_der(), &name("ccsdemo"), now)
            .is_ok());
        assert!(both.verify(good.cert_der(), &name("ccsdemo"), now).is_ok());
    }

    fn good_not_before(cert: &crate::pki::Issued) -> OffsetDateTime {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(cert.cert_der()).unwrap_or_else(|e| panic!("{e}"));
        parsed.validity().not_before.to_datetime()
    }

    #[test]
    fn roots_must_be_ca_certificates() {
        let root =
            crate::pki::ca("r", crate::pki::KeyKind::EcP256).unwrap_or_else(|e| panic!("{e}"));
        let leaf = crate::pki::database(&root, "x");
        // A database certificate needs an RSA key; the issuer may be EC.
        let leaf = leaf.unwrap_or_else(|e| panic!("{e}"));
        let err = TrustStore::from_certs(
            vec![(
                PathBuf::from("bundle.pem"),
                CertificateDer::from(leaf.cert_der().to_vec()),
            )],
            2048,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("bundle.pem") && err.contains("not a CA certificate"),
            "{err}"
        );
        assert!(matches!(
            TrustStore::from_certs(Vec::new(), 2048),
            Err(TrustError::Empty)
        ));
    }
}
