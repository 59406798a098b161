//! The probe's side of the connection: its certificate and key, and its TLS 1.2 client.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rsa::OaepPrivateDecryptingKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{ProbeError, ProbeOptions};

pub(super) fn read_cert(path: &Path) -> Result<Vec<u8>, ProbeError> {
    CertificateDer::from_pem_file(path)
        .map(|c| c.to_vec())
        .map_err(|e| ProbeError::File {
            file: path.to_owned(),
            message: format!("cannot read a PEM certificate: {e}"),
        })
}

/// The private key, and its public half as a SubjectPublicKeyInfo.
pub(super) fn read_key(path: &Path) -> Result<(OaepPrivateDecryptingKey, Vec<u8>), ProbeError> {
    crate::tools::read_rsa_private_key(path).map_err(|message| ProbeError::File {
        file: path.to_owned(),
        message,
    })
}

/// The private key must belong to the certificate, or nothing can be unwrapped.
pub(super) fn check_pair(
    cert: &[u8],
    spki: &[u8],
    options: &ProbeOptions,
) -> Result<(), ProbeError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| ProbeError::File {
        file: options.cert.clone(),
        message: format!("does not parse: {e}"),
    })?;
    if spki != parsed.public_key().raw {
        return Err(ProbeError::File {
            file: options.key.clone(),
            message: format!("is not the private key of {}", options.cert.display()),
        });
    }
    Ok(())
}

pub(super) fn tls_config(options: &ProbeOptions) -> Result<Arc<rustls::ClientConfig>, ProbeError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // The SaaS poller speaks TLS 1.2: so does the probe.
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| ProbeError::Usage(e.to_string()))?;
    let mut config = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &options.cacert {
            Some(path) => {
                for cert in
                    crate::cert::read_pem_certs(path).map_err(|message| ProbeError::File {
                        file: path.clone(),
                        message,
                    })?
                {
                    roots.add(cert).map_err(|e| ProbeError::File {
                        file: path.clone(),
                        message: e.to_string(),
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `--insecure`: any server certificate is accepted (handshake signatures are still checked).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
