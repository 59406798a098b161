//! The operator's client for the signed admin API (`ccs-endpoint api …`): builds the request,
//! signs it (RFC 9421, HMAC, covering `@method`, `@target-uri` and `content-digest`), sends it
//! over TLS (HTTP/1.1), and returns the status and JSON answer. A runbook needs nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::httpsig::{self, Algorithm, Message, Signing};
use crate::tools::ConnectError;

/// What to send, and who signs it.
pub struct ApiRequest {
    /// `https://host:port` of the `[api]` listener.
    pub url: String,
    pub method: &'static str,
    /// The path, e.g. `/v1/keys/ccsdemo/1/disable`.
    pub path: String,
    /// JSON, or empty for a GET.
    pub body: String,
    pub key_id: String,
    pub algorithm: Algorithm,
    pub secret: Zeroizing<Vec<u8>>,
    /// The CA that signed the server's certificate (default: the web PKI).
    pub cacert: Option<PathBuf>,
    pub timeout: Duration,
}

/// Why a request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("{address}: {message}")]
    Connect { address: String, message: String },
    #[error("HTTP: {0}")]
    Http(String),
}

/// The answer: status and body (JSON, as the server wrote it).
#[derive(Debug)]
pub struct ApiAnswer {
    pub status: u16,
    pub body: String,
}

fn tls(cacert: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match cacert {
        Some(path) => {
            let certs = crate::cert::read_pem_certs(path)
                .map_err(|e| ClientError::Usage(format!("--cacert {}: {e}", path.display())))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Usage(format!("--cacert {}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Usage(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A fresh nonce: 128 random bits, hex.
fn nonce() -> Result<String, ClientError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| ClientError::Usage("the CSPRNG failed".into()))?;
    Ok(hex::encode(bytes))
}

/// Signs and sends `request`.
pub async fn send(request: &ApiRequest) -> Result<ApiAnswer, ClientError> {
    let uri: Uri = request
        .url
        .parse()
        .map_err(|e| ClientError::Usage(format!("{:?} is not a URL: {e}", request.url)))?;
    if uri.scheme_str() != Some("https") {
        return Err(ClientError::Usage("--url must start with https://".into()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| ClientError::Usage("--url has no host".into()))?
        .to_string();
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let path = format!("{}{}", uri.path().trim_end_matches('/'), request.path);
    let nonce = nonce()?;
    let message = Message {
        method: request.method,
        authority: &authority,
        path_and_query: &path,
        headers: &[],
        body: request.body.as_bytes(),
    };
    let signing = Signing {
        label: "sig1",
        keyid: &request.key_id,
        algorithm: request.algorithm,
        secret: &request.secret,
        created: OffsetDateTime::now_utc().unix_timestamp(),
        nonce: &nonce,
    };
    let signed = httpsig::sign(&message, signing)
        .map_err(|e| ClientError::Usage(format!("cannot sign: {e}")))?;
    let address = format!("{host}:{port}");
    let connect = async {
        let tls = tls(request.cacert.as_ref())?;
        crate::tools::connect_tls(&host, port, tls)
            .await
            .map_err(|e| match e {
                ConnectError::Connect(message) => ClientError::Connect {
                    address: address.clone(),
                    message,
                },
                ConnectError::Name(message) => ClientError::Usage(message),
                ConnectError::Tls(message) => ClientError::Connect {
                    address: address.clone(),
                    message: format!("TLS: {message}"),
                },
            })
    };
    let exchange = async {
        let stream = connect.await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(request.method)
            .uri(&path)
            .header(header::HOST, &authority)
            .header(header::USER_AGENT, "ccs-endpoint-api");
        if !request.body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in &signed {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let http = builder
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let response = sender
            .send_request(http)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(ApiAnswer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(request.timeout, exchange)
        .await
        .map_err(|_| ClientError::Http(format!("no answer within {:?}", request.timeout)))?
}
