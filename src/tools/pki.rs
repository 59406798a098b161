//! Generated certificates for the development default and the tests (rcgen): a CA, a TLS server
//! certificate, and database certificates with the real SaaS profile. Never for production.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, RsaKeySize, SanType, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use rcgen::Error;

/// The kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcP256,
}

impl KeyKind {
    /// A fresh key pair of this kind.
    pub fn generate(self) -> Result<KeyPair, Error> {
        match self {
            KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            KeyKind::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
            KeyKind::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
            KeyKind::EcP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        }
    }
}

/// A certificate with its private key.
pub struct Issued {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Issued {
    /// The certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        self.cert.der()
    }

    /// The private key, PKCS#8 PEM, in a buffer wiped on drop.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    /// The private key, PKCS#8 DER, in a buffer wiped on drop.
    pub fn key_der(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.key.serialize_der())
    }

    /// Signs `params` for `key` with this certificate as the issuer.
    pub fn issue(&self, params: CertificateParams, key: KeyPair) -> Result<Issued, Error> {
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued { cert, key })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ccs-endpoint development");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Parameters valid from an hour ago for `days`.
pub fn params_valid_for(days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    params
}

/// Parameters of a root CA.
pub fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = params_valid_for(3650);
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A self-signed root CA.
pub fn ca(common_name: &str, kind: KeyKind) -> Result<Issued, Error> {
    let key = kind.generate()?;
    let cert = ca_params(common_name).self_signed(&key)?;
    Ok(Issued { cert, key })
}

/// A TLS server certificate for host names and IP addresses, ECDSA P-256.
pub fn server(ca: &Issued, names: &[&str]) -> Result<Issued, Error> {
    let mut params = params_valid_for(365);
    params.distinguished_name = name(names.first().copied().unwrap_or("localhost"));
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
        })
        .collect::<Result<_, Error>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    ca.issue(params, KeyKind::EcP256.generate()?)
}

/// Parameters with the profile of the real database certificates: CN and SAN DNS
/// `tse_<instance>` (an underscore in a DNS name), Key Usage digitalSignature + keyAgreement only
/// (no keyEncipherment), EKU clientAuth, CA:FALSE.
pub fn database_params(common_name: &str) -> Result<CertificateParams, Error> {
    let mut params = params_valid_for(730);
    params.distinguished_name = name(common_name);
    params.subject_alt_names = vec![SanType::DnsName(common_name.try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A database certificate for `instance`, RSA-2048, issued by `ca`.
pub fn database(ca: &Issued, instance: &str) -> Result<Issued, Error> {
    ca.issue(
        database_params(&format!("tse_{instance}"))?,
        KeyKind::Rsa2048.generate()?,
    )
}
