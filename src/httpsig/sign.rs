//! Signing a request as a client does (`ccs-endpoint api`, the tests): the `Content-Digest`,
//! `Signature-Input` and `Signature` headers, the signature's parameters read back the way a
//! verifier reads them.

use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::{params, signature_base, Algorithm, Message, Refusal};

/// What a client signs with. `Debug` leaves the secret out.
#[derive(Clone, Copy)]
pub struct Signing<'a> {
    pub label: &'a str,
    pub keyid: &'a str,
    pub algorithm: Algorithm,
    pub secret: &'a [u8],
    pub created: i64,
    pub nonce: &'a str,
}

impl std::fmt::Debug for Signing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("label", &self.label)
            .field("keyid", &self.keyid)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .field("created", &self.created)
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// Signs `message` (covering `@method`, `@target-uri` and, with a body, `content-digest`):
/// the `Content-Digest` (when there is a body), `Signature-Input` and `Signature` headers.
pub fn sign(message: &Message<'_>, signing: Signing<'_>) -> Result<Vec<(String, String)>, Refusal> {
    let mut headers = Vec::new();
    let mut components = vec!["@method", "@target-uri"];
    let digest_header;
    let mut all: Vec<(&str, &str)> = message.headers.to_vec();
    if !message.body.is_empty() {
        let sum = digest::digest(&digest::SHA256, message.body);
        digest_header = format!("sha-256=:{}:", BASE64.encode(sum.as_ref()));
        components.push("content-digest");
        all.push(("content-digest", &digest_header));
        headers.push(("Content-Digest".to_owned(), digest_header.clone()));
    }
    let quoted: Vec<String> = components.iter().map(|c| format!("\"{c}\"")).collect();
    let input = format!(
        "({});created={};keyid=\"{}\";alg=\"{}\";nonce=\"{}\"",
        quoted.join(" "),
        signing.created,
        signing.keyid,
        signing.algorithm.name(),
        signing.nonce
    );
    let input_header = format!("{}={input}", signing.label);
    // The signature's own parameters are read back the way a verifier reads them.
    let placeholder = format!("{}=:AA==:", signing.label);
    all.push(("signature-input", &input_header));
    all.push(("signature", &placeholder));
    let with_input = Message {
        headers: &all,
        ..*message
    };
    let mut params =
        params(&with_input).map_err(|e| Refusal::Malformed(format!("cannot sign: {e}")))?;
    params.signature.clear();
    let base = signature_base(&params, &with_input)?;
    let tag = hmac::sign(
        &hmac::Key::new(signing.algorithm.hmac(), signing.secret),
        base.as_bytes(),
    );
    headers.push(("Signature-Input".to_owned(), input_header.clone()));
    headers.push((
        "Signature".to_owned(),
        format!("{}=:{}:", signing.label, BASE64.encode(tag.as_ref())),
    ));
    Ok(headers)
}
