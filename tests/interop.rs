//! Interop: keys wrapped by the server are unwrapped by independent implementations, OpenSSL's
//! `pkeyutl` and the JDK's SunJCE, for both paddings and both plaintext forms.
//! Both tools are required (`.ci/run` installs them); a missing one fails the test loudly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use support::*;

struct Case {
    padding: &'static str,
    plaintext: &'static str,
    secret: String,
    wrapped_b64: String,
}

impl Case {
    fn sha256(&self) -> bool {
        self.padding == "oaep-sha256"
    }

    /// What the database must find after unwrapping.
    fn expected(&self) -> Vec<u8> {
        match self.plaintext {
            "hex" => self.secret.to_ascii_lowercase().into_bytes(),
            _ => hex::decode(&self.secret).unwrap(),
        }
    }
}

/// Serves one key under each option combination and collects what the server answered.
async fn wrapped_cases(cert: &ccs_endpoint::tools::pki::Issued) -> Vec<Case> {
    let mut cases = Vec::new();
    for padding in ["oaep-sha1", "oaep-sha256"] {
        for plaintext in ["hex", "raw"] {
            let mut key = Key::new("ccsdemo", 1);
            // Upper case in the store: the hex plaintext is still the canonical lower case.
            key.secret = key.secret.to_uppercase();
            let secret = key.secret.clone();
            let server = TestServer::start(
                &[key],
                &format!("[wrap]\npadding = \"{padding}\"\nplaintext = \"{plaintext}\""),
            )
            .await;
            let reply = server.get("/kek/ccsdemo/1", Some(&header(cert))).await;
            assert_eq!(reply.status, 200, "{padding}/{plaintext}: {}", reply.body);
            cases.push(Case {
                padding,
                plaintext,
                secret,
                wrapped_b64: reply.json()["wrappedKey"].as_str().unwrap().to_owned(),
            });
        }
    }
    cases
}

fn openssl_decrypt(key_pem: &Path, wrapped: &[u8], dir: &Path, sha256: bool) -> Option<Vec<u8>> {
    let input = dir.join("wrapped.bin");
    std::fs::write(&input, wrapped).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.args(["pkeyutl", "-decrypt", "-inkey"])
        .arg(key_pem)
        .arg("-in")
        .arg(&input)
        .args(["-pkeyopt", "rsa_padding_mode:oaep"]);
    if sha256 {
        cmd.args([
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ]);
    } else {
        cmd.args([
            "-pkeyopt",
            "rsa_oaep_md:sha1",
            "-pkeyopt",
            "rsa_mgf1_md:sha1",
        ]);
    }
    let out = cmd
        .output()
        .expect("openssl is required for the interop test (.ci/run installs it)");
    out.status.success().then_some(out.stdout)
}

#[tokio::test]
async fn openssl_unwraps_every_padding_and_plaintext() {
    let cert = db_cert("ccsdemo");
    let dir = tempfile::tempdir().unwrap();
    let key_pem = dir.path().join("client.key");
    write_private(&key_pem, &cert.key_pem());
    for case in wrapped_cases(&cert).await {
        let wrapped = BASE64.decode(&case.wrapped_b64).unwrap();
        assert_eq!(wrapped.len(), 256, "RSA-2048 ciphertext");
        let got = openssl_decrypt(&key_pem, &wrapped, dir.path(), case.sha256());
        assert!(
            got.as_deref() == Some(case.expected().as_slice()),
            "{}/{}: OpenSSL did not unwrap the secret",
            case.padding,
            case.plaintext
        );
        // The other padding must not unwrap it: the option really changes the padding.
        let other = openssl_decrypt(&key_pem, &wrapped, dir.path(), !case.sha256());
        assert!(
            other.is_none(),
            "{}: the other padding unwrapped it",
            case.padding
        );
    }
}

#[tokio::test]
async fn the_jdk_unwraps_every_padding_and_plaintext() {
    let cert = db_cert("ccsdemo");
    let dir = tempfile::tempdir().unwrap();
    let key_der = dir.path().join("client.pk8");
    std::fs::write(&key_der, cert.key_der().as_slice()).unwrap();
    let cases = wrapped_cases(&cert).await;
    let mut cmd = Command::new("java");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/Unwrap.java"
    ))
    .arg(&key_der);
    for case in &cases {
        cmd.arg(if case.sha256() { "sha256" } else { "sha1" })
            .arg(&case.wrapped_b64);
    }
    let out = cmd
        .output()
        .expect("a JDK (java) is required for the interop test (.ci/run installs one)");
    assert!(
        out.status.success(),
        "java failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), cases.len());
    for (case, line) in cases.iter().zip(&lines) {
        assert!(
            hex::decode(line).unwrap() == case.expected(),
            "{}/{}: the JDK did not unwrap the secret",
            case.padding,
            case.plaintext
        );
    }
}
