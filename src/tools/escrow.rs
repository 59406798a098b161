//! Escrow: a key's secret wrapped to an offline certificate its owner keeps (RSA-OAEP with
//! SHA-256 and MGF1-SHA-256), so that losing the key store or the token does not lose the
//! database; and the same wrap in the form the SaaS's successor product (Cloud Encryption,
//! customer-managed keys) takes as an upload, the way out of CCS.
//!
//! The file backend wraps here; a token wraps itself (`C_WrapKey`), so its secret never leaves
//! it. Restoring needs the escrow certificate's private key and checks the KCV the record names.

use std::path::{Path, PathBuf};

use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cert::Fingerprint;
use crate::hsm::Hsm;
use crate::keystore::{label, KeyState};
use crate::protocol::{InstanceName, KeyId};
use crate::secret::{Kcv, Secret};
use crate::wrap::{self, Padding, Plaintext, RecipientKey, WrapOptions};

/// The smallest escrow key accepted.
pub const MIN_ESCROW_BITS: usize = 2048;

/// Why a key could not be exported or restored. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum EscrowError {
    #[error("{file}: {message}")]
    File { file: PathBuf, message: String },
    #[error("escrow certificate: {0}")]
    Certificate(String),
    #[error("{0}")]
    Wrap(String),
    #[error("escrow record: {0}")]
    Record(String),
}

/// What `keys export` writes: the key, who it is, and the escrow certificate it is wrapped to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowRecord {
    pub instance: String,
    pub key_id: KeyId,
    /// The KCV of the secret, checked again when it is restored.
    pub kcv: String,
    /// SHA-256 of the escrow certificate's DER: which certificate it is wrapped to.
    pub certificate_sha256: String,
    /// SHA-256 of that certificate's public key (SubjectPublicKeyInfo DER): which private key
    /// restores it.
    pub public_key_sha256: String,
    /// Always `oaep-sha256` (SHA-256, MGF1-SHA-256, no label).
    pub padding: String,
    /// What was wrapped: `raw` (the 32 bytes) or `hex` (the 64 hex characters a token object
    /// made with `[wrap] plaintext = "hex"` holds).
    pub plaintext: String,
    #[serde(rename = "wrappedKey")]
    pub wrapped_key: String,
}

/// An escrow (or Cloud Encryption wrapping) certificate's RSA key, and the certificate's
/// fingerprint.
pub struct EscrowCertificate {
    recipient: RecipientKey,
    fingerprint: Fingerprint,
    public_key: Fingerprint,
}

impl EscrowCertificate {
    /// Reads an X.509 certificate (DER) holding an RSA key of at least [`MIN_ESCROW_BITS`].
    pub fn from_der(der: &[u8]) -> Result<Self, EscrowError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| EscrowError::Certificate(format!("does not parse: {e}")))?;
        let recipient = RecipientKey::from_spki_der(cert.public_key().raw).map_err(|_| {
            EscrowError::Certificate("its key is not an RSA public key that can be used".into())
        })?;
        if recipient.bits() < MIN_ESCROW_BITS {
            return Err(EscrowError::Certificate(format!(
                "its RSA key has {} bits; at least {MIN_ESCROW_BITS}",
                recipient.bits()
            )));
        }
        Ok(Self {
            recipient,
            fingerprint: Fingerprint::of(der),
            public_key: Fingerprint::of(cert.public_key().raw),
        })
    }

    /// SHA-256 of the certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate's RSA key.
    pub fn recipient(&self) -> &RecipientKey {
        &self.recipient
    }
}

const OAEP_SHA256_RAW: WrapOptions = WrapOptions {
    padding: Padding::OaepSha256,
    plaintext: Plaintext::Raw,
};

/// The secret of `key` (held in the file) wrapped to `to`: the raw 32 bytes, RSA-OAEP-SHA-256.
pub fn wrap_secret(secret: &Secret, to: &EscrowCertificate) -> Result<Vec<u8>, EscrowError> {
    wrap::wrap(secret, &to.recipient, OAEP_SHA256_RAW).map_err(|e| EscrowError::Wrap(e.to_string()))
}

/// The token object of `key` wrapped to `to` by the token itself (`C_WrapKey`, RSA-OAEP-SHA-256):
/// the object's value, in the form `plaintext` says it holds.
pub fn wrap_in_token(
    hsm: &Hsm,
    key: &KeyState,
    to: &EscrowCertificate,
) -> Result<Vec<u8>, EscrowError> {
    hsm.wrap(
        &label(&key.instance, key.key_id),
        key.kcv,
        to.recipient.rsa_public(),
        Padding::OaepSha256,
    )
    .map_err(|e| match e {
        crate::hsm::HsmError::Mechanism(why) => EscrowError::Wrap(format!(
            "{} does not wrap with RSA-OAEP-SHA-256 ({why}), which escrow records use: export from a token that does (SoftHSM2 2.6 does not); the secret cannot leave the token any other way",
            hsm.token_name()
        )),
        other => EscrowError::Wrap(format!("the token's wrap failed: {other}")),
    })
}

/// The escrow record of `key`, whose wrapped value (`plaintext` form) is `wrapped`.
pub fn record(
    key: &KeyState,
    to: &EscrowCertificate,
    plaintext: Plaintext,
    wrapped: &[u8],
) -> EscrowRecord {
    EscrowRecord {
        instance: key.instance.as_str().to_owned(),
        key_id: key.key_id,
        kcv: key.kcv.to_string(),
        certificate_sha256: to.fingerprint.to_string(),
        public_key_sha256: to.public_key.to_string(),
        padding: Padding::OaepSha256.name().to_owned(),
        plaintext: plaintext.name().to_owned(),
        wrapped_key: BASE64.encode(wrapped),
    }
}

/// A restored key.
pub struct Restored {
    pub instance: InstanceName,
    pub key_id: KeyId,
    pub secret: Secret,
}

/// Unwraps `record` with the escrow private key at `key_pem` (PKCS#8 PEM) and checks the secret
/// against the record's KCV.
pub fn restore(record: &EscrowRecord, key_pem: &Path) -> Result<Restored, EscrowError> {
    let bad = |message: String| EscrowError::Record(message);
    let instance =
        InstanceName::parse(&record.instance).map_err(|e| bad(format!("instance: {e}")))?;
    let kcv = Kcv::parse(&record.kcv).ok_or_else(|| bad("kcv: not 6 hex digits".into()))?;
    if record.padding != Padding::OaepSha256.name() {
        return Err(bad(format!(
            "padding {:?}: escrow records are oaep-sha256",
            record.padding
        )));
    }
    let wrapped = BASE64
        .decode(record.wrapped_key.trim())
        .map_err(|e| bad(format!("wrappedKey is not base64: {e}")))?;
    let (key, spki) =
        super::read_rsa_private_key(key_pem).map_err(|message| EscrowError::File {
            file: key_pem.to_owned(),
            message,
        })?;
    if !Fingerprint::of(&spki)
        .to_string()
        .eq_ignore_ascii_case(record.public_key_sha256.trim())
    {
        return Err(EscrowError::File {
            file: key_pem.to_owned(),
            message: format!(
                "is not the private key of the escrow certificate {} this record is wrapped to",
                record.certificate_sha256
            ),
        });
    }
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let plain = key
        .decrypt(&OAEP_SHA256_MGF1SHA256, &wrapped, &mut out, None)
        .map_err(|_| {
            bad("wrappedKey does not unwrap with this key (another escrow key, or a damaged record)".into())
        })?;
    let secret = match (record.plaintext.as_str(), plain.len()) {
        ("raw", 32) => {
            let mut bytes = Zeroizing::new([0u8; 32]);
            bytes.copy_from_slice(plain);
            Secret::from_bytes(bytes)
        }
        ("hex", 64) => Secret::from_hex(std::str::from_utf8(plain).unwrap_or_default()),
        (form, len) => {
            return Err(bad(format!(
                "plaintext {form:?} unwrapped to {len} bytes: not a key"
            )))
        }
    }
    .map_err(|e| bad(format!("the unwrapped key {e}")))?;
    if secret.kcv() != kcv {
        return Err(bad(format!(
            "the unwrapped key has KCV {}, not the record's {kcv}: the record was changed",
            secret.kcv()
        )));
    }
    Ok(Restored {
        instance,
        key_id: record.key_id,
        secret,
    })
}
