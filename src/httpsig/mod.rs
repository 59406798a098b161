//! HTTP Message Signatures (RFC 9421) with HMAC, and `Content-Digest` (RFC 9530), as the admin
//! API authenticates a request (contract §9). Structured fields are parsed and serialised by
//! `sfv`; the signature base is built here, to the letter of RFC 9421 §2.5, and the HMAC is
//! compared in constant time by aws-lc-rs.
//!
//! What a signature must have: one label in both `Signature-Input` and `Signature`; covered
//! components including `@method`, `@target-uri` and, for a request with a body,
//! `content-digest` (checked against the body); parameters `keyid`, `alg` (the signer's),
//! `created` (within the clock skew), `nonce` (never twice while `created` is in the window,
//! see [`NonceCache`]), optionally `expires`. Each refusal says which rule failed, never a
//! secret.

use aws_lc_rs::{digest, hmac};
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, ListEntry, Parser};

mod evidence;
mod nonce;
mod sign;
#[cfg(test)]
mod tests;

pub use evidence::{Evidence, Unproven};
pub use nonce::NonceCache;
pub use sign::{sign, Signing};

/// The HMAC algorithms a signer may use (`alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
pub enum Algorithm {
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// The parts of a request a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub method: &'a str,
    /// The `Host` header (the authority the client addressed).
    pub authority: &'a str,
    /// The path and, after `?`, the query.
    pub path_and_query: &'a str,
    /// Header fields as received, names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl Message<'_> {
    /// Every value of header `name`, trimmed, joined by `, ` (RFC 9421 §2.1); `None` if absent.
    fn field(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// A signature's parameters, read from `Signature-Input`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub label: String,
    pub components: Vec<String>,
    pub keyid: String,
    pub alg: String,
    pub created: i64,
    pub nonce: String,
    pub expires: Option<i64>,
    /// `@signature-params`: the serialised inner list with its parameters.
    serialized: String,
    signature: Vec<u8>,
}

/// Why a signed request is refused (401). The message names the rule; nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no signature: sign the request with HTTP Message Signatures (RFC 9421): Signature-Input and Signature headers")]
    Missing,
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    #[error("key id {0:?} is inactive")]
    Inactive(String),
    #[error("key id {0:?} expired on {1}")]
    Expired(String, String),
    #[error("alg {found:?} is not the algorithm of key id {keyid:?} ({expected})")]
    AlgMismatch {
        keyid: String,
        found: String,
        expected: &'static str,
    },
    #[error("created {created} is outside the allowed clock skew of {skew} s around the server's time {now}")]
    Stale { created: i64, now: i64, skew: i64 },
    #[error("the signature expired at {0}")]
    SignatureExpired(i64),
    #[error("the signature does not cover {0}")]
    NotCovered(&'static str),
    #[error("content-digest: {0}")]
    Digest(String),
    #[error("bad signature: the HMAC of the signature base does not match (wrong secret, or the request was changed after signing)")]
    BadSignature,
    #[error("nonce {0:?} was already used within the clock-skew window (a replay)")]
    Replayed(String),
    #[error("too many signed requests within the clock-skew window; retry later")]
    ReplayCacheFull,
    #[error("the request is addressed to {authority:?}, which is not this API ({names}): a signature is bound to the server it was made for; sign for one of its names, or list this one in [api] names")]
    OtherServer { authority: String, names: String },
}

/// The shortest nonce taken: a short one is guessable and collides.
pub const MIN_NONCE: usize = 16;

/// Reads the one signature of `message`.
pub fn params(message: &Message<'_>) -> Result<Params, Refusal> {
    let (Some(input), Some(signature)) =
        (message.field("signature-input"), message.field("signature"))
    else {
        return Err(Refusal::Missing);
    };
    let malformed = |what: String| Refusal::Malformed(what);
    let inputs: Dictionary = Parser::new(&input).parse().map_err(|e| {
        malformed(format!(
            "Signature-Input is not a structured-field dictionary: {e}"
        ))
    })?;
    let signatures: Dictionary = Parser::new(&signature).parse().map_err(|e| {
        malformed(format!(
            "Signature is not a structured-field dictionary: {e}"
        ))
    })?;
    if inputs.len() != 1 {
        return Err(malformed(format!(
            "Signature-Input holds {} signatures: send exactly one",
            inputs.len()
        )));
    }
    let Some((label, ListEntry::InnerList(list))) = inputs.first() else {
        return Err(malformed(
            "Signature-Input's member is not an inner list".into(),
        ));
    };
    let label = label.as_str().to_owned();
    let signature = match signatures.iter().find(|(k, _)| k.as_str() == label) {
        Some((
            _,
            ListEntry::Item(Item {
                bare_item: BareItem::ByteSequence(bytes),
                ..
            }),
        )) => bytes.clone(),
        Some(_) => {
            return Err(malformed(format!(
                "Signature's {label} is not a byte sequence"
            )))
        }
        None => {
            return Err(malformed(format!(
                "Signature has no {label}, the label of Signature-Input"
            )))
        }
    };
    let mut components = Vec::with_capacity(list.items.len());
    for item in &list.items {
        match (&item.bare_item, item.params.is_empty()) {
            (BareItem::String(s), true) => components.push(s.as_str().to_owned()),
            (BareItem::String(s), false) => {
                return Err(malformed(format!(
                    "component {:?} has parameters, which this server does not take",
                    s.as_str()
                )))
            }
            _ => return Err(malformed("a covered component is not a string".into())),
        }
    }
    let param = |name: &str| {
        list.params
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v)
    };
    let string = |name: &'static str| match param(name) {
        Some(BareItem::String(s)) => Ok(s.as_str().to_owned()),
        Some(_) => Err(malformed(format!("parameter {name} is not a string"))),
        None => Err(malformed(format!("parameter {name} is missing"))),
    };
    let integer = |name: &'static str| match param(name) {
        Some(BareItem::Integer(i)) => Ok(Some(i64::from(*i))),
        Some(_) => Err(malformed(format!("parameter {name} is not an integer"))),
        None => Ok(None),
    };
    let serialized = vec![ListEntry::InnerList(InnerList {
        items: list.items.clone(),
        params: list.params.clone(),
    })]
    .serialize()
    .unwrap_or_default();
    let nonce = string("nonce")?;
    if nonce.chars().count() < MIN_NONCE {
        return Err(malformed(format!(
            "parameter nonce has {} characters: send at least {MIN_NONCE}, random (e.g. 16 random bytes in hex or base64)",
            nonce.chars().count()
        )));
    }
    Ok(Params {
        label,
        components,
        keyid: string("keyid")?,
        alg: string("alg")?,
        created: integer("created")?
            .ok_or_else(|| malformed("parameter created is missing".into()))?,
        nonce,
        expires: integer("expires")?,
        serialized,
        signature,
    })
}

/// The checks that need no secret: coverage, time window, expiry, and the body's digest.
pub fn check(params: &Params, message: &Message<'_>, now: i64, skew: i64) -> Result<(), Refusal> {
    covers(params, message)?;
    if (params.created - now).abs() > skew {
        return Err(Refusal::Stale {
            created: params.created,
            now,
            skew,
        });
    }
    if let Some(expires) = params.expires.filter(|&e| e <= now) {
        return Err(Refusal::SignatureExpired(expires));
    }
    check_digest_if_any(params, message)
}

/// What a signature must cover: `@method`, `@target-uri` and, with a body, `content-digest`.
fn covers(params: &Params, message: &Message<'_>) -> Result<(), Refusal> {
    for required in ["@method", "@target-uri"] {
        if !params.components.iter().any(|c| c == required) {
            return Err(Refusal::NotCovered(required));
        }
    }
    let covers_digest = params.components.iter().any(|c| c == "content-digest");
    if !message.body.is_empty() && !covers_digest {
        return Err(Refusal::NotCovered(
            "content-digest (required for a request with a body)",
        ));
    }
    Ok(())
}

/// The body's digest, when there is a body or the signature covers one.
fn check_digest_if_any(params: &Params, message: &Message<'_>) -> Result<(), Refusal> {
    if !message.body.is_empty() || params.components.iter().any(|c| c == "content-digest") {
        check_digest(message)?;
    }
    Ok(())
}

/// `Content-Digest` (RFC 9530): every `sha-256` / `sha-512` member must match the body, and
/// there must be one.
fn check_digest(message: &Message<'_>) -> Result<(), Refusal> {
    let bad = |what: &str| Refusal::Digest(what.to_owned());
    let field = message.field("content-digest").ok_or_else(|| {
        bad("the header is missing: send Content-Digest: sha-256=:<base64 of SHA-256 of the body>:")
    })?;
    let digests: Dictionary = Parser::new(&field)
        .parse()
        .map_err(|e| Refusal::Digest(format!("not a structured-field dictionary: {e}")))?;
    let mut checked = 0;
    for (name, entry) in &digests {
        let algorithm = match name.as_str() {
            "sha-256" => &digest::SHA256,
            "sha-512" => &digest::SHA512,
            _ => continue,
        };
        let ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(value),
            ..
        }) = entry
        else {
            return Err(bad("a digest is not a byte sequence"));
        };
        if digest::digest(algorithm, message.body).as_ref() != value.as_slice() {
            return Err(Refusal::Digest(format!(
                "{} does not match the body (the body was changed, or the digest computed over something else)",
                name.as_str()
            )));
        }
        checked += 1;
    }
    match checked {
        0 => Err(bad("no sha-256 or sha-512 member")),
        _ => Ok(()),
    }
}

/// The signature base (RFC 9421 §2.5) of `params` over `message`.
pub fn signature_base(params: &Params, message: &Message<'_>) -> Result<String, Refusal> {
    let mut base = String::new();
    for component in &params.components {
        let value = match component.as_str() {
            "@method" => message.method.to_owned(),
            "@target-uri" => format!("https://{}{}", message.authority, message.path_and_query),
            "@authority" => message.authority.to_ascii_lowercase(),
            "@path" => message.path_and_query.split('?').next().unwrap_or("").to_owned(),
            "@query" => match message.path_and_query.split_once('?') {
                Some((_, query)) => format!("?{query}"),
                None => "?".to_owned(),
            },
            name if name.starts_with('@') => {
                return Err(Refusal::Malformed(format!(
                    "component {name:?} is not one this server takes (@method, @target-uri, @authority, @path, @query, header fields)"
                )))
            }
            name if name != name.to_ascii_lowercase() => {
                return Err(Refusal::Malformed(format!("component {name:?} must be lower case")))
            }
            name => message.field(name).ok_or_else(|| {
                Refusal::Malformed(format!("covered header {name:?} is not in the request"))
            })?,
        };
        base.push_str(&format!("\"{component}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {}", params.serialized));
    Ok(base)
}

/// Whether `params`' signature is the HMAC of its base under `secret` (constant time).
pub fn verify_hmac(
    params: &Params,
    message: &Message<'_>,
    algorithm: Algorithm,
    secret: &[u8],
) -> Result<(), Refusal> {
    let base = signature_base(params, message)?;
    let key = hmac::Key::new(algorithm.hmac(), secret);
    hmac::verify(&key, base.as_bytes(), &params.signature).map_err(|_| Refusal::BadSignature)
}
