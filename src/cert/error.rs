//! Why a database certificate was refused: the 401 messages and their stable reasons.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{MAX_HEADER_LEN, MAX_RSA_BITS};

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
    #[error("The database certificate is invalid: its trust root {root:?} expired on {}", rfc3339(.not_after))]
    RootExpired {
        root: String,
        not_after: OffsetDateTime,
    },
    #[error("The database certificate is invalid: its subject Common Name {name} is outside the name constraints of its trust root {root:?}")]
    NameConstraints { name: String, root: String },
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
            CertError::RootExpired { .. } => "cert_root_expired",
            CertError::NameConstraints { .. } => "cert_name_constraints",
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
