#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Properties of the admin API's authentication (proptest): a request signed by a signer is
//! accepted as signed, and any change to it after signing — its method, authority, path, query,
//! body, any parameter of its signature (created, keyid, alg, nonce) or the signature itself —
//! is refused, even when the changed key id names a signer with the same secret.

use ccs_endpoint::api::authenticate;
use ccs_endpoint::httpsig::{self, Algorithm, Message, Signing};
use ccs_endpoint::signers::Signers;
use proptest::prelude::*;
use time::OffsetDateTime;

const SECRET_B64: &str = "c2lnbmVyIHNlY3JldCBmb3IgdGhlIHByb3BlcnR5IHRlc3RzIQ==";

fn signers() -> Signers {
    let mut text = String::new();
    for (id, alg) in [
        ("soc", "hmac-sha256"),
        ("twin", "hmac-sha256"),
        ("wide", "hmac-sha512"),
    ] {
        text.push_str(&format!(
            "[[signer]]\nkey_id = \"{id}\"\nsecret = \"{SECRET_B64}\"\nalgorithm = \"{alg}\"\nactions = [\"status\", \"disable\"]\n"
        ));
    }
    Signers::parse(std::path::Path::new("signers.toml"), &text).unwrap()
}

/// A request: method, authority, path, body.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    authority: String,
    path: String,
    body: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn verify(&self, signers: &Signers, now: i64) -> bool {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let message = Message {
            method: &self.method,
            authority: &self.authority,
            path_and_query: &self.path,
            headers: &headers,
            body: self.body.as_bytes(),
        };
        let now = OffsetDateTime::from_unix_timestamp(now).unwrap();
        authenticate(&message, signers, now, 60).is_ok()
    }

    fn header_mut(&mut self, name: &str) -> &mut String {
        &mut self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap()
            .1
    }
}

fn signed() -> impl Strategy<Value = (Request, i64)> {
    (
        prop_oneof![Just("GET"), Just("POST")],
        "[a-z]{1,12}(\\.[a-z]{2,5})?(:[0-9]{2,5})?",
        "/v1/keys(/[A-Za-z0-9_-]{1,10}/[0-9]{1,5}(/disable)?)?(\\?[a-z]=[0-9])?",
        "\\{\"reason\":\"[ -~]{0,40}\"\\}",
        1_700_000_000i64..1_900_000_000,
        "[A-Za-z0-9]{16,24}",
    )
        .prop_map(|(method, authority, path, body, created, nonce)| {
            let body = if method == "POST" {
                body
            } else {
                String::new()
            };
            let secret = base64_decode(SECRET_B64);
            let message = Message {
                method,
                authority: &authority,
                path_and_query: &path,
                headers: &[],
                body: body.as_bytes(),
            };
            let signing = Signing {
                label: "sig1",
                keyid: "soc",
                algorithm: Algorithm::HmacSha256,
                secret: &secret,
                created,
                nonce: &nonce,
            };
            let headers = httpsig::sign(&message, signing).unwrap();
            let request = Request {
                method: method.to_owned(),
                authority,
                path,
                body,
                headers,
            };
            (request, created)
        })
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// One change made after signing.
#[derive(Debug, Clone)]
enum Change {
    Method,
    Authority(String),
    Path(String),
    Body(String),
    Created(i64),
    KeyId(&'static str),
    Alg(&'static str),
    Nonce(String),
    SignatureBit(prop::sample::Index, u8),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::Method),
        "[a-z]{1,8}".prop_map(Change::Authority),
        "[a-z0-9/?=]{1,6}".prop_map(Change::Path),
        "[ -~]{1,20}".prop_map(Change::Body),
        prop_oneof![-59i64..0, 1i64..60].prop_map(Change::Created),
        prop_oneof![Just("twin"), Just("wide")].prop_map(Change::KeyId),
        prop_oneof![Just("hmac-sha384"), Just("hmac-sha512")].prop_map(Change::Alg),
        "[A-Za-z0-9]{1,4}".prop_map(Change::Nonce),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, b)| Change::SignatureBit(i, b)),
    ]
}

/// `text` with the parameter `name=…` of Signature-Input replaced by `value`.
fn replace_param(input: &str, name: &str, value: &str) -> String {
    let start = input.find(&format!(";{name}=")).unwrap() + name.len() + 2;
    let end = input[start..].find(';').map_or(input.len(), |e| start + e);
    format!("{}{value}{}", &input[..start], &input[end..])
}

fn apply(request: &mut Request, change: &Change, created: i64) {
    match change {
        Change::Method => {
            request.method = if request.method == "GET" {
                "POST"
            } else {
                "GET"
            }
            .to_owned()
        }
        Change::Authority(extra) => request.authority.push_str(extra),
        Change::Path(extra) => request.path.push_str(extra),
        Change::Body(extra) => request.body.push_str(extra),
        Change::Created(delta) => {
            let input = request.header_mut("Signature-Input");
            *input = replace_param(input, "created", &(created + delta).to_string());
        }
        Change::KeyId(id) => {
            let input = request.header_mut("Signature-Input");
            *input = replace_param(input, "keyid", &format!("\"{id}\""));
        }
        Change::Alg(alg) => {
            let input = request.header_mut("Signature-Input");
            *input = replace_param(input, "alg", &format!("\"{alg}\""));
        }
        Change::Nonce(extra) => {
            let input = request.header_mut("Signature-Input");
            let nonce = input
                .split("nonce=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned();
            *input = replace_param(input, "nonce", &format!("\"{nonce}{extra}\""));
        }
        Change::SignatureBit(index, bits) => {
            use base64::Engine;
            let engine = base64::engine::general_purpose::STANDARD;
            let signature = request.header_mut("Signature");
            let inner = signature.trim_start_matches("sig1=:").trim_end_matches(':');
            let mut bytes = engine.decode(inner).unwrap();
            let i = index.index(bytes.len());
            bytes[i] ^= bits;
            *signature = format!("sig1=:{}:", engine.encode(bytes));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_change_after_signing_is_refused((request, created) in signed(), change in change()) {
        let signers = signers();
        prop_assert!(request.verify(&signers, created), "the request as signed was refused");
        let mut changed = request.clone();
        apply(&mut changed, &change, created);
        prop_assert!(!changed.verify(&signers, created), "accepted after {change:?}: {changed:?}");
    }
}
