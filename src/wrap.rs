//! RSA-OAEP wrapping of a secret to a database certificate's public key (aws-lc-rs).

use std::fmt;

use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};
use serde::Deserialize;

use crate::secret::Secret;

/// The OAEP hash and mask generation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Padding {
    /// OAEP with SHA-1 and MGF1-SHA-1: OpenSSL's PKCS1_OAEP_PADDING, Java's
    /// `RSA/NONE/OAEPWithSHA-1AndMGF1Padding`. What the SaaS expects by default.
    #[default]
    OaepSha1,
    /// OAEP with SHA-256 and MGF1-SHA-256.
    OaepSha256,
}

impl Padding {
    /// The algorithm that wraps and unwraps with this padding.
    pub fn algorithm(self) -> &'static OaepAlgorithm {
        match self {
            Padding::OaepSha1 => &OAEP_SHA1_MGF1SHA1,
            Padding::OaepSha256 => &OAEP_SHA256_MGF1SHA256,
        }
    }

    /// The name used in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Padding::OaepSha1 => "oaep-sha1",
            Padding::OaepSha256 => "oaep-sha256",
        }
    }

    /// The hash and mask generation function, as tokens and vendors name them.
    pub fn hashes(self) -> &'static str {
        match self {
            Padding::OaepSha1 => "SHA-1/MGF1-SHA-1",
            Padding::OaepSha256 => "SHA-256/MGF1-SHA-256",
        }
    }
}

/// What is encrypted: the hex text of the secret or its raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Plaintext {
    /// The 64 lower-case ASCII hex characters, as the published Java reference wraps it.
    #[default]
    Hex,
    /// The 32 bytes.
    Raw,
}

impl Plaintext {
    /// The name used in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Plaintext::Hex => "hex",
            Plaintext::Raw => "raw",
        }
    }
}

/// The `[wrap]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapOptions {
    #[serde(default)]
    pub padding: Padding,
    #[serde(default)]
    pub plaintext: Plaintext,
}

impl fmt::Display for WrapOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "padding {}, plaintext {}",
            self.padding.name(),
            self.plaintext.name()
        )
    }
}

/// An RSA public key as PKCS#11 wants it: big-endian modulus and exponent.
#[derive(Clone)]
pub struct RsaPublic {
    pub modulus: Vec<u8>,
    pub exponent: Vec<u8>,
}

impl RsaPublic {
    /// Reads an RSA SubjectPublicKeyInfo (DER).
    pub fn from_spki_der(spki: &[u8]) -> Option<Self> {
        use x509_parser::prelude::FromDer;
        use x509_parser::public_key::PublicKey;
        let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
        match info.parsed().ok()? {
            PublicKey::RSA(rsa) => Some(Self {
                modulus: strip_zeros(rsa.modulus),
                exponent: strip_zeros(rsa.exponent),
            }),
            _ => None,
        }
    }
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].to_vec()
}

/// The public key of a verified database certificate, ready to encrypt to.
pub struct RecipientKey {
    key: OaepPublicEncryptingKey,
    bits: usize,
    rsa: RsaPublic,
}

impl RecipientKey {
    /// Reads an RSA SubjectPublicKeyInfo (DER). aws-lc accepts moduli of 2048 to 8192 bits.
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, WrapError> {
        let key = PublicEncryptingKey::from_der(spki).map_err(|_| WrapError::UnusableKey)?;
        let bits = key.key_size_bits();
        let key = OaepPublicEncryptingKey::new(key).map_err(|_| WrapError::UnusableKey)?;
        let rsa = RsaPublic::from_spki_der(spki).ok_or(WrapError::UnusableKey)?;
        Ok(Self { key, bits, rsa })
    }

    /// The modulus and exponent, for a PKCS#11 token to wrap to.
    pub fn rsa_public(&self) -> &RsaPublic {
        &self.rsa
    }

    /// The modulus length in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientKey(RSA-{})", self.bits)
    }
}

/// Why wrapping failed. Carries nothing about the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    #[error("the RSA public key cannot be used for OAEP encryption")]
    UnusableKey,
    #[error("RSA-OAEP encryption failed")]
    Encrypt,
}

/// Encrypts the secret (as hex text or raw bytes) to the recipient with RSA-OAEP.
/// No label; a fresh random seed each time, so two wraps of one secret differ.
pub fn wrap(
    secret: &Secret,
    recipient: &RecipientKey,
    options: WrapOptions,
) -> Result<Vec<u8>, WrapError> {
    let hex;
    let plaintext: &[u8] = match options.plaintext {
        Plaintext::Hex => {
            hex = secret.to_hex();
            hex.as_slice()
        }
        Plaintext::Raw => secret.expose(),
    };
    let mut out = vec![0u8; recipient.key.ciphertext_size()];
    let len = recipient
        .key
        .encrypt(options.padding.algorithm(), plaintext, &mut out, None)
        .map_err(|_| WrapError::Encrypt)?
        .len();
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};

    #[test]
    fn every_option_round_trips_and_differs_each_time() {
        let private =
            PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap_or_else(|e| panic!("{e}"));
        let spki = AsDer::<PublicKeyX509Der>::as_der(&private.public_key())
            .unwrap_or_else(|e| panic!("{e}"));
        let recipient =
            RecipientKey::from_spki_der(spki.as_ref()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recipient.bits(), 2048);
        let private = OaepPrivateDecryptingKey::new(private).unwrap_or_else(|e| panic!("{e}"));
        let secret = Secret::generate().unwrap_or_else(|e| panic!("{e}"));
        for padding in [Padding::OaepSha1, Padding::OaepSha256] {
            for plaintext in [Plaintext::Hex, Plaintext::Raw] {
                let options = WrapOptions { padding, plaintext };
                let a = wrap(&secret, &recipient, options).unwrap_or_else(|e| panic!("{e}"));
                let b = wrap(&secret, &recipient, options).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(a.len(), 256);
                assert_ne!(a, b, "OAEP must be randomised");
                let mut out = vec![0u8; 256];
                let got = private
                    .decrypt(padding.algorithm(), &a, &mut out, None)
                    .unwrap_or_else(|e| panic!("{options}: {e}"));
                let want: Vec<u8> = match plaintext {
                    Plaintext::Hex => secret.to_hex().to_vec(),
                    Plaintext::Raw => secret.expose().to_vec(),
                };
                assert!(
                    got == &want[..],
                    "{options}: the unwrapped key is not the secret"
                );
                let other = match padding {
                    Padding::OaepSha1 => Padding::OaepSha256,
                    Padding::OaepSha256 => Padding::OaepSha1,
                };
                assert!(
                    private
                        .decrypt(other.algorithm(), &a, &mut out, None)
                        .is_err(),
                    "{options}: the other padding must not unwrap"
                );
            }
        }
    }
}
