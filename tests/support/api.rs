//! The admin API's independent client: Python's `http-message-signatures` (PyPI) signs and
//! sends requests (tests/httpsig/pyhms.py); signers are made with `ccs-endpoint signers add`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::process::{bin, output_with_stdin};

/// The Python with `http-message-signatures`: $CCS_TEST_PYTHON, else target/pyenv's.
pub fn python() -> PathBuf {
    let python = std::env::var_os("CCS_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python3")
        });
    let found = Command::new(&python)
        .args(["-c", "import http_message_signatures"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "Python's http-message-signatures (PyPI) is missing: python3 -m venv target/pyenv && target/pyenv/bin/pip install http-message-signatures (.ci/run does), or set CCS_TEST_PYTHON"
    );
    python
}

/// Runs tests/httpsig/pyhms.py in `mode` over `cases`: its output lines.
pub fn pyhms(mode: &str, cases: &Value) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/httpsig/pyhms.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(mode);
    let out = output_with_stdin(cmd, &cases.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A signer: key id, secret (base64, as `signers add` printed it), algorithm.
#[derive(Clone, Debug)]
pub struct Signer {
    pub key_id: String,
    pub secret: String,
    pub alg: &'static str,
}

/// Adds a signer to `file` with `ccs-endpoint signers add`; the secret it printed.
pub fn add_signer(file: &Path, key_id: &str, actions: &str) -> Signer {
    let out = bin()
        .args(["signers", "add", "--file"])
        .arg(file)
        .args(["--key-id", key_id, "--actions", actions])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    Signer {
        key_id: key_id.to_owned(),
        secret,
        alg: "hmac-sha256",
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A fresh nonce.
pub fn nonce() -> String {
    super::random_secret_hex()[..32].to_owned()
}

/// A request `signer` signs (covering `@method`, `@target-uri` and, with a body,
/// `content-digest`), for `send`; change its fields to tamper with it.
pub fn request(api: SocketAddr, signer: &Signer, method: &str, path: &str, body: &str) -> Value {
    let mut headers = vec![];
    let mut components = vec!["@method", "@target-uri"];
    if !body.is_empty() {
        headers.push(json!(["Content-Type", "application/json"]));
        components.push("content-digest");
    }
    let cafile =
        std::env::temp_dir().join(format!("ccs-test-server-ca-{}.pem", std::process::id()));
    if !cafile.exists() {
        std::fs::write(&cafile, super::pki().server_ca.cert_pem()).unwrap();
    }
    json!({
        "method": method, "url": format!("https://{api}{path}"), "headers": headers,
        "body": body, "keyid": signer.key_id, "secret": signer.secret, "alg": signer.alg,
        "created": now(), "nonce": nonce(), "components": components,
        "cafile": cafile,
    })
}

/// Sends every case (Python signs each unless it is `unsigned`): per case, each answer's
/// status and JSON body.
pub fn send(cases: &[Value]) -> Vec<Vec<(u16, Value)>> {
    pyhms("send", &Value::Array(cases.to_vec()))
        .iter()
        .map(|line| {
            let answers: Vec<Value> = serde_json::from_str(line).unwrap();
            answers
                .iter()
                .map(|a| {
                    let body = a["body"].as_str().unwrap();
                    let json = serde_json::from_str(body).unwrap_or(Value::String(body.into()));
                    (u16::try_from(a["status"].as_u64().unwrap()).unwrap(), json)
                })
                .collect()
        })
        .collect()
}

/// Sends one request once: its status and JSON body.
pub fn call(
    api: SocketAddr,
    signer: &Signer,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    send(&[request(api, signer, method, path, body)])
        .remove(0)
        .remove(0)
}
