//! Shared by the integration tests: a test PKI generated at run time, configuration files in a
//! temporary folder, an in-process server on a port-0 listener, and a raw HTTP/1.1-over-TLS
//! client that sends paths exactly as written.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod api;
#[path = "../../benches/support/attack.rs"]
pub mod attack;
pub mod fleet;
pub mod postgres;
pub mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ccs_endpoint::runtime::Loaded;
use ccs_endpoint::server::Daemon;
use ccs_endpoint::tools::pki::{self, Issued, KeyKind};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::SupportedProtocolVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fresh random secret as 64 hex characters.
pub fn random_secret_hex() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

/// The whole test PKI, generated once per test binary.
pub struct Pki {
    /// "snc-db-encrypt": a 4096-bit root, as the production ones are.
    pub root_a: Issued,
    /// "snc-db-ejbca-root": the second production root.
    pub root_b: Issued,
    /// An intermediate under root B; its PEM is bundled with root B.
    pub intermediate: Issued,
    /// Same name as root A, another key: must not be trusted.
    pub impostor: Issued,
    /// Issues the server's own TLS certificate.
    pub server_ca: Issued,
    pub server: Issued,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root_a = pki::ca("snc-db-encrypt", KeyKind::Rsa4096).unwrap();
        let root_b = pki::ca("snc-db-ejbca-root", KeyKind::Rsa2048).unwrap();
        let intermediate = root_b
            .issue(
                pki::ca_params("snc-db-issuing-1"),
                KeyKind::Rsa2048.generate().unwrap(),
            )
            .unwrap();
        let impostor = pki::ca("snc-db-encrypt", KeyKind::Rsa2048).unwrap();
        let server_ca = pki::ca("test server CA", KeyKind::EcP256).unwrap();
        let server = pki::server(&server_ca, &["localhost", "127.0.0.1"]).unwrap();
        Pki {
            root_a,
            root_b,
            intermediate,
            impostor,
            server_ca,
            server,
        }
    })
}

/// A database certificate for `instance` from root A, with the real profile.
pub fn db_cert(instance: &str) -> Issued {
    pki::database(&pki().root_a, instance).unwrap()
}

/// The header value for a certificate.
pub fn header(cert: &Issued) -> String {
    BASE64.encode(cert.cert_der())
}

/// One key-store entry.
pub struct Key {
    pub instance: &'static str,
    pub key_id: u64,
    pub secret: String,
    pub extra: &'static str,
}

impl Key {
    pub fn new(instance: &'static str, key_id: u64) -> Self {
        Self {
            instance,
            key_id,
            secret: random_secret_hex(),
            extra: "",
        }
    }

    pub fn with(mut self, extra: &'static str) -> Self {
        self.extra = extra;
        self
    }
}

/// Writes certificates, a key store and a configuration into `dir`; returns the config path.
/// `extra_config` follows the `[keys]` lines: plain lines belong to `[keys]`, and it may add
/// tables (`[server]`, `[limits]`, `[wrap]`…); there is no `[server]` table otherwise.
pub fn write_config(dir: &Path, keys: &[Key], extra_config: &str) -> PathBuf {
    let p = pki();
    std::fs::write(dir.join("server.crt"), p.server.cert_pem()).unwrap();
    std::fs::write(dir.join("server.key"), p.server.key_pem().as_bytes()).unwrap();
    std::fs::write(dir.join("root-a.pem"), p.root_a.cert_pem()).unwrap();
    std::fs::write(
        dir.join("root-b.pem"),
        format!("{}{}", p.root_b.cert_pem(), p.intermediate.cert_pem()),
    )
    .unwrap();
    let mut store = String::from("# test key store\n");
    for k in keys {
        store.push_str(&format!(
            "[[key]]\ninstance = \"{}\"\nkey_id = {}\nsecret = \"{}\"\n{}\n",
            k.instance, k.key_id, k.secret, k.extra
        ));
    }
    write_private(&dir.join("keys.toml"), &store);
    let config = dir.join("ccs-endpoint.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n\
             [trust]\nroots = [\"root-a.pem\", \"root-b.pem\"]\n[keys]\nfile = \"keys.toml\"\n{extra_config}\n"
        ),
    )
    .unwrap();
    config
}

pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A server running in this process until dropped: the whole daemon (reload, admin listener).
pub struct TestServer {
    pub addr: SocketAddr,
    /// The admin API's listener, with `[api]` (its `listen` may be port 0).
    pub api: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub done: Option<tokio::task::JoinHandle<()>>,
    pub reloader: Arc<ccs_endpoint::runtime::reload::Reloader>,
}

impl TestServer {
    /// Serves the keys with the extra configuration lines (appended after `[keys] file`).
    pub async fn start(keys: &[Key], extra_config: &str) -> Self {
        Self::start_with(keys, extra_config, |_| ()).await
    }

    /// As `start`, letting the test change the daemon before it runs (e.g. its key store).
    pub async fn start_with(keys: &[Key], extra_config: &str, edit: impl FnOnce(&Daemon)) -> Self {
        Self::start_inner(keys, extra_config, |_| (), edit).await
    }

    /// As `start`, `files` writing what the configuration names into its folder first.
    pub async fn start_with_files(
        keys: &[Key],
        extra_config: &str,
        files: impl FnOnce(&Path),
    ) -> Self {
        Self::start_inner(keys, extra_config, files, |_| ()).await
    }

    async fn start_inner(
        keys: &[Key],
        extra_config: &str,
        files: impl FnOnce(&Path),
        edit: impl FnOnce(&Daemon),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), keys, extra_config);
        files(dir.path());
        let loaded = Loaded::from_file(&config).unwrap_or_else(|e| panic!("{e}"));
        let mut daemon = loaded.into_daemon().unwrap_or_else(|e| panic!("{e}"));
        edit(&daemon);
        let mut api = None;
        if let Some(address) = daemon.api_address() {
            let listener = TcpListener::bind(address).await.unwrap();
            api = Some(listener.local_addr().unwrap());
            daemon.listen_api(listener);
        }
        let reloader = Arc::clone(&daemon.reloader);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(daemon.run(listener, Some(admin_listener), async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            api,
            admin,
            dir,
            stop: Some(stop),
            done: Some(done),
            reloader,
        }
    }

    /// Asks for a graceful shutdown (as SIGTERM does).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// GET `path` with the given X-DB-Certificate header value (or none), over TLS 1.3.
    pub async fn get(&self, path: &str, cert_header: Option<&str>) -> Reply {
        let mut headers = Vec::new();
        if let Some(h) = cert_header {
            headers.push(("X-DB-Certificate", h));
        }
        self.send(&rustls::version::TLS13, "GET", path, &headers)
            .await
    }

    /// Sends one request exactly as given and reads the reply.
    pub async fn send(
        &self,
        version: &'static SupportedProtocolVersion,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        raw_request(
            self.addr,
            version,
            request_bytes(method, path, headers).as_bytes(),
        )
        .await
    }

    /// GET on the admin listener (plain HTTP): status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let mut tcp = TcpStream::connect(self.admin).await.unwrap();
        tcp.write_all(request_bytes("GET", path, &[]).as_bytes())
            .await
            .unwrap();
        let mut bytes = Vec::new();
        tcp.read_to_end(&mut bytes).await.unwrap();
        let reply = parse_reply(&bytes, None);
        (reply.status, reply.body)
    }
}

/// An HTTP/1.1 request with `Connection: close`.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A parsed HTTP/1.1 reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub tls_version: Option<rustls::ProtocolVersion>,
    /// The leaf certificate the server presented.
    pub server_cert: Option<Vec<u8>>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// A client trusting only the test server CA, restricted to one TLS version.
pub fn client_config(version: &'static SupportedProtocolVersion) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki().server_ca.cert_der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Writes bytes on a fresh TLS connection and reads until the server closes it.
pub async fn raw_request(
    addr: SocketAddr,
    version: &'static SupportedProtocolVersion,
    raw: &[u8],
) -> Reply {
    raw_request_after(addr, b"", version, raw).await
}

/// As `raw_request`, writing `prefix` (a PROXY header) on the TCP connection before TLS.
pub async fn raw_request_after(
    addr: SocketAddr,
    prefix: &[u8],
    version: &'static SupportedProtocolVersion,
    raw: &[u8],
) -> Reply {
    let connector = tokio_rustls::TlsConnector::from(client_config(version));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(prefix).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let tls_version = tls.get_ref().1.protocol_version();
    let server_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    tls.write_all(raw).await.unwrap();
    let mut bytes = Vec::new();
    // A server may close without close_notify; what arrived before counts.
    let _ = tls.read_to_end(&mut bytes).await;
    let mut reply = parse_reply(&bytes, tls_version);
    reply.server_cert = server_cert;
    reply
}

/// Parses an HTTP/1.1 response (headers and a body read to the end of the connection).
pub fn parse_reply(bytes: &[u8], tls_version: Option<rustls::ProtocolVersion>) -> Reply {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
        tls_version,
        server_cert: None,
    }
}

/// Decrypts a wrapped key with the database certificate's private key (aws-lc; the interop
/// tests use OpenSSL and the JDK instead).
pub fn unwrap_with(cert: &Issued, wrapped_b64: &str, sha256: bool) -> Vec<u8> {
    use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey};
    let key = PrivateDecryptingKey::from_pkcs8(&cert.key_der()).unwrap();
    let key = OaepPrivateDecryptingKey::new(key).unwrap();
    let wrapped = BASE64.decode(wrapped_b64).unwrap();
    let mut out = vec![0u8; wrapped.len()];
    let algorithm = if sha256 {
        &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256
    } else {
        &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1
    };
    key.decrypt(algorithm, &wrapped, &mut out, None)
        .unwrap()
        .to_vec()
}

/// Replaces a file the way deployment tools do: write aside, then rename over it.
pub fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    write_private(&tmp, text);
    std::fs::rename(&tmp, path).unwrap();
}

/// The value of one sample (`name{labels}`) in a Prometheus text exposition.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// One `ccs-endpoint` line of a runbook block: the environment it sets before the command
/// (`VAR=value ccs-endpoint …`), its arguments, and the exit status it expects (`# exit N`).
#[derive(Debug, Clone)]
pub struct RunbookLine {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub code: i32,
}

/// The `ccs-endpoint` lines of docs/runbooks.md's blocks fenced "```sh <tag>", in order,
/// `<instance>` read as `ccsdemo`.
pub fn runbook(tag: &str) -> Vec<RunbookLine> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbooks.md"))
            .unwrap();
    let fence = format!("```sh {tag}");
    let mut lines = Vec::new();
    let mut in_block = false;
    for line in text.lines().map(str::trim) {
        if line == fence {
            in_block = true;
            continue;
        }
        if line == "```" {
            in_block = false;
            continue;
        }
        if !in_block {
            continue;
        }
        let (command, code) = match line.split_once("# exit ") {
            Some((command, code)) => (command, code.trim().parse().unwrap()),
            None => (line, 0),
        };
        let mut words = command.split_whitespace().peekable();
        let mut env = Vec::new();
        while let Some((name, value)) = words.peek().and_then(|w| w.split_once('=')) {
            if !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                break;
            }
            env.push((name.to_owned(), value.to_owned()));
            words.next();
        }
        if words.next() != Some("ccs-endpoint") {
            continue;
        }
        let args = words.map(|w| w.replace("<instance>", "ccsdemo")).collect();
        lines.push(RunbookLine { env, args, code });
    }
    lines
}

/// OpenSSL's RSA-OAEP-SHA-256 (MGF1-SHA-256) decryption of `wrapped` with `key_pem`.
pub fn openssl_unwrap(key_pem: &Path, wrapped: &[u8], dir: &Path) -> Vec<u8> {
    let input = dir.join("wrapped.bin");
    std::fs::write(&input, wrapped).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkeyutl", "-decrypt", "-inkey"])
        .arg(key_pem)
        .arg("-in")
        .arg(&input)
        .args([
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ])
        .output()
        .expect("openssl is required (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts that every series named with `prefix` in the shipped alert rules and dashboard is
/// one `metrics` (a `/metrics` page) exports.
pub fn assert_exported(metrics: &str, prefix: &str) {
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/ccs-endpoint.json",
    ] {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        let names = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with(prefix));
        for name in names {
            let family = name.strip_suffix("_total").unwrap_or(name);
            assert!(
                metrics.contains(&format!("# TYPE {family} ")),
                "{file} queries {name}, which /metrics does not export:\n{metrics}"
            );
        }
    }
}
