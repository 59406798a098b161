//! `probe`: poll an endpoint exactly as the SaaS does (TLS 1.2, the header built from a
//! certificate), check the answer's shape, unwrap it with the certificate's private key, and say
//! precisely what is wrong when anything is.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::{header, Request, Uri};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::tools::ConnectError;
use time::OffsetDateTime;

use crate::protocol::{parse_kek_path, KeyId};
use crate::secret::Kcv;
use crate::wrap::{Padding, Plaintext, WrapOptions};

mod answer;
mod client;
mod outcome;
use answer::{check_shape, unwrap};
use client::{check_pair, read_cert, read_key, tls_config};
pub use outcome::Outcome;

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
        let d = Duration::from_secs(self.seconds_left.unsigned_abs());
        let left = if self.seconds_left > 0 {
            format!("{} left", humantime::format_duration(d))
        } else {
            format!("PASSED {} ago", humantime::format_duration(d))
        };
        if self.seconds_left > 0 {
            writeln!(f, "ok: the key unwrapped")?;
        } else {
            writeln!(
                f,
                "KILLED: the key unwrapped, but validUntil has passed: the database shuts down at this poll (hard kill switch)"
            )?;
        }
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
        crate::tools::connect_tls(&host, port, tls)
            .await
            .map_err(|e| match e {
                ConnectError::Connect(message) => ProbeError::Connect {
                    address: address.clone(),
                    message,
                },
                ConnectError::Name(message) => ProbeError::Usage(message),
                ConnectError::Tls(mut message) => {
                    if message.contains("UnknownIssuer") {
                        message.push_str(
                            " (for an endpoint certificate from a private CA, pass --cacert CA.pem)",
                        );
                    }
                    ProbeError::Tls {
                        address: address.clone(),
                        message,
                    }
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
