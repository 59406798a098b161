#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_790_000_000;

fn signed(method: &str, path: &str, body: &[u8], algorithm: Algorithm) -> Vec<(String, String)> {
    let mut headers = vec![("Host".to_owned(), "ccs.example.com:9443".to_owned())];
    let message = Message {
        method,
        authority: "ccs.example.com:9443",
        path_and_query: path,
        headers: &[("Host", "ccs.example.com:9443")],
        body,
    };
    headers.extend(
        sign(
            &message,
            Signing {
                label: "sig1",
                keyid: "soc-oncall",
                algorithm,
                secret: SECRET,
                created: NOW,
                nonce: "n-0000000000000001",
            },
        )
        .unwrap(),
    );
    headers
}

/// Verifies as the API will: parse, check, HMAC.
fn verify(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    algorithm: Algorithm,
) -> Result<Params, Refusal> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let message = Message {
        method,
        authority: "ccs.example.com:9443",
        path_and_query: path,
        headers: &headers,
        body,
    };
    let params = params(&message)?;
    check(&params, &message, NOW, 60)?;
    verify_hmac(&params, &message, algorithm, SECRET)?;
    Ok(params)
}

#[test]
fn a_signed_request_verifies_with_each_algorithm() {
    for algorithm in [
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ] {
        let body = br#"{"reason":"incident 42"}"#;
        let headers = signed("POST", "/v1/keys/ccsdemo/1/disable", body, algorithm);
        let params = verify(
            "POST",
            "/v1/keys/ccsdemo/1/disable",
            &headers,
            body,
            algorithm,
        )
        .unwrap();
        assert_eq!(params.keyid, "soc-oncall");
        assert_eq!(params.alg, algorithm.name());
        assert_eq!(
            params.components,
            ["@method", "@target-uri", "content-digest"]
        );
    }
}

#[test]
fn any_change_after_signing_is_refused() {
    let a = Algorithm::HmacSha256;
    let body = br#"{"reason":"incident 42"}"#;
    let path = "/v1/keys/ccsdemo/1/disable";
    let headers = signed("POST", path, body, a);
    assert_eq!(
        verify("PUT", path, &headers, body, a).err(),
        Some(Refusal::BadSignature)
    );
    assert_eq!(
        verify("POST", "/v1/keys/ccsdemo/2/disable", &headers, body, a).err(),
        Some(Refusal::BadSignature)
    );
    assert!(matches!(
        verify("POST", path, &headers, br#"{"reason":"incident 43"}"#, a),
        Err(Refusal::Digest(_))
    ));
    // Another secret, another algorithm.
    assert_eq!(
        verify("POST", path, &headers, body, Algorithm::HmacSha512).err(),
        Some(Refusal::BadSignature)
    );
    // A covered parameter changed.
    for (from, to) in [
        ("created=1790000000", "created=1790000001"),
        (
            "nonce=\"n-0000000000000001\"",
            "nonce=\"n-0000000000000002\"",
        ),
        ("keyid=\"soc-oncall\"", "keyid=\"soc-other\""),
    ] {
        let changed: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.replace(from, to)))
            .collect();
        assert_eq!(
            verify("POST", path, &changed, body, a).err(),
            Some(Refusal::BadSignature),
            "{to}"
        );
    }
}

#[test]
fn each_rule_has_its_refusal() {
    let a = Algorithm::HmacSha256;
    let path = "/v1/keys";
    let headers = signed("GET", path, b"", a);
    let without = |name: &str| -> Vec<(String, String)> {
        headers.iter().filter(|(n, _)| n != name).cloned().collect()
    };
    assert_eq!(
        verify("GET", path, &without("Signature"), b"", a).err(),
        Some(Refusal::Missing)
    );
    let edit = |from: &str, to: &str| -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| (n.clone(), v.replace(from, to)))
            .collect()
    };
    let refusal = |headers: Vec<(String, String)>| {
        verify("GET", path, &headers, b"", a)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(
        refusal(edit(";nonce=\"n-0000000000000001\"", "")).contains("parameter nonce is missing")
    );
    assert!(refusal(edit(";alg=\"hmac-sha256\"", "")).contains("parameter alg is missing"));
    assert!(refusal(edit("created=1790000000", "created=1789999000"))
        .contains("outside the allowed clock skew"));
    assert!(
        refusal(edit("(\"@method\" \"@target-uri\")", "(\"@target-uri\")"))
            .contains("does not cover @method")
    );
    assert!(refusal(edit("sig1=(", "a=(), sig1=(")).contains("exactly one"));
    assert!(refusal(edit("sig1=:", "sig2=:")).contains("Signature has no sig1"));
    assert!(refusal(edit(
        ";nonce=\"n-0000000000000001\"",
        ";nonce=\"n-0000000000000001\";expires=1789999999"
    ))
    .contains("expired at 1789999999"));

    // A body whose digest the signature does not cover.
    let body = b"{}";
    let get_headers = signed("POST", path, b"", a);
    let err = verify("POST", path, &get_headers, body, a).err().unwrap();
    assert_eq!(
        err,
        Refusal::NotCovered("content-digest (required for a request with a body)")
    );
}

#[test]
fn nonces_are_taken_once_while_in_the_window_and_the_cache_is_bounded() {
    let cache = NonceCache::new(2);
    assert_eq!(cache.take("k", "a", NOW, NOW, 60), Ok(()));
    assert_eq!(
        cache.take("k", "a", NOW, NOW + 30, 60),
        Err(Refusal::Replayed("a".into()))
    );
    assert_eq!(cache.take("other", "a", NOW, NOW, 60), Ok(()), "per key id");
    assert_eq!(
        cache.take("k", "b", NOW, NOW, 60),
        Err(Refusal::ReplayCacheFull)
    );
    // Once the window has passed, the old entries are forgotten (and a stale request is
    // refused by its `created` anyway).
    assert_eq!(cache.take("k", "b", NOW + 100, NOW + 100, 60), Ok(()));
}
