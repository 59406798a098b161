//! The admin API's signature headers (`Signature-Input`, `Signature`, `Content-Digest`) and the
//! request they cover, as a hostile client sends them: reading, checking and verifying never
//! panic; a refusal never quotes the signer's secret; and nothing but the HMAC under that
//! secret verifies (an input that verifies must be one the secret signed).
//!
//! The input is lines: method, authority, path, Signature-Input, Signature, Content-Digest,
//! then the body.
#![no_main]

use base64::Engine;
use ccs_endpoint::httpsig::{self, Algorithm, Message};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzzing secret of 32 bytes or more, never shown";

fuzz_target!(|text: &str| {
    let mut lines = text.splitn(7, '\n');
    let mut next = || lines.next().unwrap_or_default();
    let (method, authority, path) = (next(), next(), next());
    let (input, signature, digest) = (next(), next(), next());
    let body = next().as_bytes();
    let headers = [
        ("Signature-Input", input),
        ("Signature", signature),
        ("Content-Digest", digest),
    ];
    let message = Message {
        method,
        authority,
        path_and_query: path,
        headers: &headers,
        body,
    };
    let secret_b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    // A refusal may quote what the client sent; an input holding the secret proves nothing.
    let secret_text = std::str::from_utf8(SECRET).unwrap_or_default();
    let secret_b64 = match text.contains(secret_text) || text.contains(&secret_b64) {
        true => String::from("\0never"),
        false => secret_b64,
    };
    let params = match httpsig::params(&message) {
        Ok(params) => params,
        Err(refusal) => return no_secret(&refusal.to_string(), &secret_b64),
    };
    if let Err(refusal) = httpsig::check(&params, &message, params.created, 60) {
        no_secret(&refusal.to_string(), &secret_b64);
    }
    for algorithm in [Algorithm::HmacSha256, Algorithm::HmacSha384, Algorithm::HmacSha512] {
        match httpsig::verify_hmac(&params, &message, algorithm, SECRET) {
            // The fuzzer cannot compute an HMAC under a secret it does not know.
            Ok(()) => panic!("a signature the secret never made verified"),
            Err(refusal) => no_secret(&refusal.to_string(), &secret_b64),
        }
    }
});

fn no_secret(message: &str, secret_b64: &str) {
    if secret_b64.starts_with('\0') {
        return;
    }
    assert!(!message.contains(secret_b64), "a refusal quoted the secret");
    assert!(
        !message.as_bytes().windows(SECRET.len()).any(|w| w == SECRET),
        "a refusal quoted the secret"
    );
}
