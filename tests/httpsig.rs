#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RFC 9421 (HMAC) and RFC 9530 against an independent implementation: Python's
//! `http-message-signatures` (PyPI) signs requests that ccs-endpoint's verifier must accept
//! (every algorithm, several component sets, bodies or none), and verifies what ccs-endpoint's
//! client signs. `.ci/run` installs the library in `target/pyenv`; without it this test fails
//! naming the package.

mod support;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ccs_endpoint::httpsig::{self, Algorithm, Message, Signing};
use serde_json::{json, Value};
use support::api::pyhms;

const AUTHORITY: &str = "ccs.example.com:9443";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

struct Case {
    method: &'static str,
    path: &'static str,
    body: &'static str,
    algorithm: Algorithm,
    components: &'static [&'static str],
    extra: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        method: "POST",
        path: "/v1/keys/ccsdemo/1/disable",
        body: r#"{"reason":"INC-42: \"stolen\" é"}"#,
        algorithm: Algorithm::HmacSha256,
        components: &["@method", "@target-uri", "content-digest"],
        extra: &[("Content-Type", "application/json")],
    },
    Case {
        method: "GET",
        path: "/v1/keys",
        body: "",
        algorithm: Algorithm::HmacSha384,
        components: &["@method", "@target-uri"],
        extra: &[],
    },
    Case {
        method: "POST",
        path: "/v1/keys/ccsdemo/1/renew?dry=1",
        body: r#"{"until":"2027-01-01T00:00:00Z"}"#,
        algorithm: Algorithm::HmacSha512,
        components: &[
            "@method",
            "@target-uri",
            "@authority",
            "@path",
            "@query",
            "content-type",
            "content-digest",
        ],
        extra: &[
            ("Content-Type", "application/json"),
            ("X-Request-Id", " abc "),
        ],
    },
];

#[test]
fn requests_the_python_library_signs_verify_here() {
    let secret = b"a secret of the soc-oncall signer, 32+ bytes long";
    let created = now();
    let cases: Vec<Value> = CASES
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut headers = vec![json!(["Host", AUTHORITY])];
            headers.extend(c.extra.iter().map(|(n, v)| json!([n, v])));
            json!({
                "method": c.method, "url": format!("https://{AUTHORITY}{}", c.path),
                "headers": headers, "body": c.body, "keyid": "soc-oncall",
                "secret": BASE64.encode(secret), "alg": c.algorithm.name(),
                "created": created, "nonce": format!("nonce-{i:016}"), "label": format!("py{i}"),
                "components": c.components,
            })
        })
        .collect();
    let signed = pyhms("sign", &Value::Array(cases));
    assert_eq!(signed.len(), CASES.len());
    for (case, headers) in CASES.iter().zip(&signed) {
        let pairs: Vec<(String, String)> = serde_json::from_str(headers).unwrap();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let message = Message {
            method: case.method,
            authority: AUTHORITY,
            path_and_query: case.path,
            headers: &pairs,
            body: case.body.as_bytes(),
        };
        let params = httpsig::params(&message).unwrap_or_else(|e| panic!("{headers}: {e}"));
        httpsig::check(&params, &message, now(), 60).unwrap_or_else(|e| panic!("{headers}: {e}"));
        httpsig::verify_hmac(&params, &message, case.algorithm, secret)
            .unwrap_or_else(|e| panic!("{}: {headers}: {e}", case.algorithm.name()));
        // The same request changed after signing is refused.
        let tampered = Message {
            body: b"{}",
            ..message
        };
        let tampered = httpsig::check(&params, &tampered, now(), 60)
            .and_then(|()| httpsig::verify_hmac(&params, &tampered, case.algorithm, secret));
        assert!(tampered.is_err(), "{headers}");
        let other = httpsig::verify_hmac(
            &params,
            &message,
            case.algorithm,
            b"another secret, also long enough",
        );
        assert_eq!(other, Err(httpsig::Refusal::BadSignature));
    }
}

#[test]
fn requests_signed_here_verify_in_the_python_library() {
    let secret = b"the operator's secret from signers.toml, 32 bytes+";
    let cases: Vec<Value> = CASES
        .iter()
        .flat_map(|c| {
            let message = Message {
                method: c.method,
                authority: AUTHORITY,
                path_and_query: c.path,
                headers: &[("Host", AUTHORITY)],
                body: c.body.as_bytes(),
            };
            let signing = Signing {
                label: "ccs",
                keyid: "soc-oncall",
                algorithm: c.algorithm,
                secret,
                created: now(),
                nonce: "n-42-0123456789ab",
            };
            let mut headers = vec![("Host".to_owned(), AUTHORITY.to_owned())];
            headers.extend(httpsig::sign(&message, signing).unwrap());
            let case = |body: &str, secret: &[u8]| {
                json!({
                    "method": c.method, "url": format!("https://{AUTHORITY}{}", c.path),
                    "headers": headers, "body": body, "secret": BASE64.encode(secret),
                    "alg": c.algorithm.name(),
                })
            };
            // As signed; with the body changed; with another secret.
            [
                case(c.body, secret),
                case("{\"reason\":\"changed\"}", secret),
                case(c.body, b"not the secret it was signed with!"),
            ]
        })
        .collect();
    let verdicts = pyhms("verify", &Value::Array(cases));
    for (i, verdict) in verdicts.iter().enumerate() {
        match i % 3 {
            0 => assert_eq!(verdict, "ok", "case {i}"),
            _ => assert!(verdict.starts_with("refused:"), "case {i}: {verdict}"),
        }
    }
}
