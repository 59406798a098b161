//! `probe`: poll an endpoint exactly as the SaaS does (TLS 1.2, the header built from a
//! certificate), check the answer's shape, unwrap it with the certificate's private key, and say
//! precisely what is wrong when anything is.

use std::fmt;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey};
use axum::http::{header, Request, Uri};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::protocol::{parse_kek_path, KeyId};
use crate::secret::{Kcv, Secret, SECRET_LEN};
use crate::wrap::{Padding, Plaintext, WrapOptions};

/// What to probe and what to expect.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub url: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Trust this CA for the server's certificate instead of the public (Mozilla) roots.
    pub cacert: Option<PathBuf>,
    /// Do not verify the server's certificate at all.
    pub insecure: bool,
    pub expect_kcv: Option<String>,
    /// The padding and plaintext the database expects.
    pub expect: WrapOptions,
    pub timeout: Duration,
}

/// A successful poll.
#[derive(Debug)]
pub struct ProbeReport {
    pub key_id: KeyId,
    pub valid_until: String,
    /// Seconds from now to `validUntil`; negative when the hard kill switch is thrown.
    pub seconds_left: i64,
    pub kcv: Kcv,
    pub padding: Padding,
    pub plaintext: Plaintext,
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let left = if self.seconds_left >= 0 {
            let d = Duration::from_secs(self.seconds_left.unsigned_abs());
            format!("{} left", humantime::format_duration(d))
        } else {
            let d = Duration::from_secs(self.seconds_left.unsigned_abs());
            format!(
                "PASSED {} ago: the database shuts down at this poll (hard kill switch)",
                humantime::format_duration(d)
            )
        };
        writeln!(f, "ok: the key unwrapped")?;
        writeln!(f, "keyId       {}", self.key_id)?;
        writeln!(f, "validUntil  {} ({left})", self.valid_until)?;
        writeln!(f, "kcv         {}", self.kcv)?;
        write!(
            f,
            "wrapping    padding {}, plaintext {}",
            self.padding.name(),
            self.plaintext.name()
        )
    }
}

/// Why a probe failed, worded for the person running it.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Usage(String),
    #[error("{file}: {message}")]
    File { file: PathBuf, message: String },
    #[error("cannot connect to {address}: {message}")]
    Connect { address: String, message: String },
    #[error("TLS 1.2 handshake with {address} failed: {message}")]
    Tls { address: String, message: String },
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    #[error("the server answered {status}: {message}{hint}")]
    Status {
        status: u16,
        message: String,
        hint: String,
    },
    #[error("the answer does not have the protocol's shape: {0}")]
    Shape(String),
    #[error("padding mismatch: the key unwraps with {actual}, but the database expects {expected}. The server's [wrap] padding is the likely cause")]
    Padding {
        expected: &'static str,
        actual: &'static str,
    },
    #[error("plaintext mismatch: the server wraps the {actual} form, but the database expects {expected}. Check the server's [wrap] plaintext")]
    Plaintext {
        expected: &'static str,
        actual: &'static str,
    },
    #[error("cannot unwrap with {key}: the server wrapped to another key, or with a padding other than oaep-sha1 and oaep-sha256")]
    Unwrap { key: PathBuf },
    #[error("KCV mismatch: the server handed out the key with KCV {actual}, not the expected {expected}")]
    Kcv { expected: String, actual: Kcv },
}

/// Polls the endpoint once and checks everything the database would.
pub async fn probe(options: &ProbeOptions) -> Result<ProbeReport, ProbeError> {
    let uri: Uri = options
        .url
        .parse()
        .map_err(|e| ProbeError::Usage(format!("{:?} is not a URL: {e}", options.url)))?;
    if uri.scheme_str() != Some("https") {
        return Err(ProbeError::Usage("the URL must start with https://".into()));
    }
    let host = uri
        .host()
        .ok_or_else(|| ProbeError::Usage("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let kek = parse_kek_path(uri.path()).map_err(|e| {
        ProbeError::Usage(format!(
            "the URL's path must be /kek/<instance>/<key_id>: {e}"
        ))
    })?;

    let cert = read_cert(&options.cert)?;
    let (key, spki) = read_key(&options.key)?;
    check_pair(&cert, &spki, options)?;
    let header_value = BASE64.encode(&cert);

    let address = format!("{host}:{port}");
    let tls = tls_config(options)?;
    let connect = async {
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| ProbeError::Connect {
                address: address.clone(),
                message: e.to_string(),
            })?
            .collect();
        let tcp = tokio::net::TcpStream::connect(addrs.as_slice())
            .await
            .map_err(|e| ProbeError::Connect {
                address: address.clone(),
                message: e.to_string(),
            })?;
        let name = ServerName::try_from(host.clone())
            .map_err(|e| ProbeError::Usage(format!("bad host name {host:?}: {e}")))?;
        tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let mut message = e.to_string();
                if message.contains("UnknownIssuer") {
                    message.push_str(
                        " (for an endpoint certificate from a private CA, pass --cacert CA.pem)",
                    );
                }
                ProbeError::Tls {
                    address: address.clone(),
                    message,
                }
            })
    };
    let stream = tokio::time::timeout(options.timeout, connect)
        .await
        .map_err(|_| ProbeError::Connect {
            address: address.clone(),
            message: format!("no answer within {:?}", options.timeout),
        })??;

    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProbeError::Http(e.to_string()))?;
    tokio::spawn(connection);
    let request = Request::get(uri.path())
        .header(header::HOST, &address)
        .header(header::USER_AGENT, "ccs-endpoint-probe")
        .header("X-DB-Certificate", header_value)
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::Http(e.to_string()))?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ProbeError::Http(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ProbeError::Http(e.to_string()))?
            .to_bytes();
        Ok::<_, ProbeError>((parts, body))
    };
    let (parts, body) = tokio::time::timeout(options.timeout, exchange)
        .await
        .map_err(|_| ProbeError::Http(format!("no answer within {:?}", options.timeout)))??;

    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ProbeError::Shape(format!("the body is not JSON ({e})")))?;
    if parts.status != 200 {
        let message = json["error"]
            .as_str()
            .unwrap_or("(no error message)")
            .to_owned();
        let hint = match parts.status.as_u16() {
            401 => " (the endpoint refused the certificate: is it issued by one of its [trust] roots, and is its CN tse_<instance> for the URL's instance?)",
            404 => " (the certificate passed; no active key for this instance and key id: missing, or disabled)",
            403 => " (this address is not on the endpoint's allow-list)",
            _ => "",
        };
        return Err(ProbeError::Status {
            status: parts.status.as_u16(),
            message,
            hint: hint.into(),
        });
    }
    for (name, want) in [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        let got = parts.headers.get(&name).and_then(|v| v.to_str().ok());
        if got != Some(want) {
            return Err(ProbeError::Shape(format!(
                "{name} is {got:?}, not {want:?}"
            )));
        }
    }
    let (key_id, valid_until, wrapped) = check_shape(&json, kek.key_id)?;
    let (secret, padding, plaintext) = unwrap(&key, &wrapped, options)?;
    let kcv = secret.kcv();
    if let Some(expected) = &options.expect_kcv {
        if !expected.eq_ignore_ascii_case(&kcv.to_string()) {
            return Err(ProbeError::Kcv {
                expected: expected.clone(),
                actual: kcv,
            });
        }
    }
    let until = OffsetDateTime::parse(&valid_until, &time::format_description::well_known::Rfc3339)
        .map_err(|e| ProbeError::Shape(format!("validUntil: {e}")))?;
    Ok(ProbeReport {
        key_id,
        seconds_left: (until - OffsetDateTime::now_utc()).whole_seconds(),
        valid_until,
        kcv,
        padding,
        plaintext,
    })
}

/// Exactly `keyId` (the requested number), `validUntil` (`yyyy-MM-ddTHH:mm:ss.SSSZ`) and
/// `wrappedKey` (padded standard base64).
fn check_shape(
    json: &serde_json::Value,
    want_key_id: KeyId,
) -> Result<(KeyId, String, Vec<u8>), ProbeError> {
    let shape = |m: String| ProbeError::Shape(m);
    let object = json
        .as_object()
        .ok_or_else(|| shape("the body is not a JSON object".into()))?;
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    fields.sort_unstable();
    if fields != ["keyId", "validUntil", "wrappedKey"] {
        return Err(shape(format!(
            "fields are {fields:?}, not keyId, validUntil, wrappedKey"
        )));
    }
    let key_id = object["keyId"].as_u64().ok_or_else(|| {
        shape(format!(
            "keyId {} is not an unsigned number",
            object["keyId"]
        ))
    })?;
    if key_id != want_key_id {
        return Err(shape(format!(
            "keyId is {key_id}, but key {want_key_id} was asked for"
        )));
    }
    let valid_until = object["validUntil"]
        .as_str()
        .ok_or_else(|| shape("validUntil is not a string".into()))?;
    let b = valid_until.as_bytes();
    let format_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !format_ok {
        return Err(shape(format!(
            "validUntil {valid_until:?} is not yyyy-MM-ddTHH:mm:ss.SSSZ"
        )));
    }
    let wrapped = object["wrappedKey"]
        .as_str()
        .ok_or_else(|| shape("wrappedKey is not a string".into()))?;
    let wrapped = BASE64
        .decode(wrapped)
        .map_err(|e| shape(format!("wrappedKey is not padded standard base64: {e}")))?;
    Ok((key_id, valid_until.to_owned(), wrapped))
}

/// Unwraps with the expected padding; when that fails, tries the other to name the mismatch.
fn unwrap(
    key: &OaepPrivateDecryptingKey,
    wrapped: &[u8],
    options: &ProbeOptions,
) -> Result<(Secret, Padding, Plaintext), ProbeError> {
    let expected = options.expect.padding;
    let other = match expected {
        Padding::OaepSha1 => Padding::OaepSha256,
        Padding::OaepSha256 => Padding::OaepSha1,
    };
    let mut out = Zeroizing::new(vec![0u8; wrapped.len().max(key.key_size_bytes())]);
    let len = match key.decrypt(algorithm(expected), wrapped, &mut out, None) {
        Ok(plain) => plain.len(),
        Err(_) => {
            return Err(
                match key.decrypt(algorithm(other), wrapped, &mut out, None) {
                    Ok(_) => ProbeError::Padding {
                        expected: expected.name(),
                        actual: other.name(),
                    },
                    Err(_) => ProbeError::Unwrap {
                        key: options.key.clone(),
                    },
                },
            )
        }
    };
    let plain = &out[..len];
    let (secret, form) = if len == 2 * SECRET_LEN && plain.iter().all(u8::is_ascii_hexdigit) {
        let text = std::str::from_utf8(plain).unwrap_or_default();
        (Secret::from_hex(text), Plaintext::Hex)
    } else if len == SECRET_LEN {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        bytes.copy_from_slice(plain);
        (Secret::from_bytes(bytes), Plaintext::Raw)
    } else {
        return Err(ProbeError::Shape(format!(
            "the unwrapped key is {len} bytes: neither 64 hex characters nor 32 bytes"
        )));
    };
    if form != options.expect.plaintext {
        return Err(ProbeError::Plaintext {
            expected: options.expect.plaintext.name(),
            actual: form.name(),
        });
    }
    let secret = secret.map_err(|e| ProbeError::Shape(format!("the unwrapped key: {e}")))?;
    Ok((secret, expected, form))
}

fn algorithm(padding: Padding) -> &'static aws_lc_rs::rsa::OaepAlgorithm {
    match padding {
        Padding::OaepSha1 => &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
        Padding::OaepSha256 => &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
    }
}

fn read_cert(path: &Path) -> Result<Vec<u8>, ProbeError> {
    CertificateDer::from_pem_file(path)
        .map(|c| c.to_vec())
        .map_err(|e| ProbeError::File {
            file: path.to_owned(),
            message: format!("cannot read a PEM certificate: {e}"),
        })
}

/// The private key, and its public half as a SubjectPublicKeyInfo.
fn read_key(path: &Path) -> Result<(OaepPrivateDecryptingKey, Vec<u8>), ProbeError> {
    let err = |message: String| ProbeError::File {
        file: path.to_owned(),
        message,
    };
    let key = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| err(format!("cannot read a PEM private key: {e}")))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = key else {
        return Err(err(
            "is not PKCS#8 (\"BEGIN PRIVATE KEY\"); convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
        ));
    };
    let key = PrivateDecryptingKey::from_pkcs8(pkcs8.secret_pkcs8_der())
        .map_err(|_| err("is not an RSA private key of 2048 to 8192 bits".into()))?;
    let spki = AsDer::<PublicKeyX509Der>::as_der(&key.public_key())
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| err("its public key cannot be encoded".into()))?;
    let key = OaepPrivateDecryptingKey::new(key)
        .map_err(|_| err("cannot be used for RSA-OAEP".into()))?;
    Ok((key, spki))
}

/// The private key must belong to the certificate, or nothing can be unwrapped.
fn check_pair(cert: &[u8], spki: &[u8], options: &ProbeOptions) -> Result<(), ProbeError> {
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

fn tls_config(options: &ProbeOptions) -> Result<Arc<rustls::ClientConfig>, ProbeError> {
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
