//! End to end over real TLS on a port-0 listener: every row of the status table, every
//! near-miss certificate, both roots, an intermediate, the real profile, TLS 1.2 and 1.3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use ccs_endpoint::keystore::{KeyState, KeyStore, LookupError, Secrets};
use ccs_endpoint::protocol::InstanceName;
use ccs_endpoint::tools::pki::{self, KeyKind};
use ccs_endpoint::wrap::{RecipientKey, WrapError, WrapOptions};
use rcgen::{DistinguishedName, DnType, ExtendedKeyUsagePurpose};
use support::*;
use time::{Duration, OffsetDateTime};

fn parse_valid_until(s: &str) -> OffsetDateTime {
    assert_eq!(s.len(), 24, "{s}");
    assert!(s.ends_with('Z') && s.as_bytes()[19] == b'.', "{s}");
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test]
async fn the_real_profile_gets_its_key_over_tls_1_2_and_1_3() {
    let key = Key::new("ccsdemo", 1);
    let secret = key.secret.clone();
    let server = TestServer::start(&[key], "").await;
    let cert = db_cert("ccsdemo");
    let h = header(&cert);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let before = OffsetDateTime::now_utc();
        let reply = server
            .send(
                version,
                "GET",
                "/kek/ccsdemo/1",
                &[("X-DB-Certificate", &h)],
            )
            .await;
        let after = OffsetDateTime::now_utc();
        assert_eq!(reply.tls_version, Some(version.version));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let body = reply.json();
        let fields: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(fields, ["keyId", "validUntil", "wrappedKey"]);
        assert_eq!(body["keyId"], serde_json::json!(1));
        let valid_until = parse_valid_until(body["validUntil"].as_str().unwrap());
        let week = Duration::days(7);
        assert!(valid_until >= (before + week).replace_nanosecond(0).unwrap());
        assert!(valid_until <= after + week);
        let unwrapped = unwrap_with(&cert, body["wrappedKey"].as_str().unwrap(), false);
        // Compared without printing: a secret never reaches test output.
        assert!(
            unwrapped == secret.as_bytes(),
            "the unwrapped key is not the secret"
        );
    }
}

#[tokio::test]
async fn header_name_is_case_insensitive_and_roots_b_and_intermediates_are_trusted() {
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    let p = pki();
    let from_b = pki::database(&p.root_b, "ccsdemo").unwrap();
    let from_intermediate = pki::database(&p.intermediate, "ccsdemo").unwrap();
    for cert in [&from_b, &from_intermediate] {
        let h = header(cert);
        for name in ["x-db-certificate", "X-DB-CERTIFICATE", "X-Db-Certificate"] {
            let reply = server
                .send(
                    &rustls::version::TLS13,
                    "GET",
                    "/kek/ccsdemo/1",
                    &[(name, &h)],
                )
                .await;
            assert_eq!(reply.status, 200, "{name}: {}", reply.body);
        }
    }
}

#[tokio::test]
async fn status_table() {
    let server = TestServer::start(
        &[
            Key::new("ccsdemo", 1),
            Key::new("ccsdemo", 3).with("disabled = true"),
        ],
        "",
    )
    .await;
    let good = header(&db_cert("ccsdemo"));
    let other = header(&db_cert("nokeys"));
    let tls = &rustls::version::TLS13;

    // 400: the path is not exactly /kek/<instance>/<key_id>, whatever the method or header.
    for path in [
        "/",
        "/kek",
        "/kek/",
        "/kek/ccsdemo",
        "/kek/ccsdemo/",
        "/kek/ccsdemo/1/",
        "/kek/ccsdemo/1/extra",
        "/kek//1",
        "/kek/ccsdemo/-1",
        "/kek/ccsdemo/+1",
        "/kek/ccsdemo/1a",
        "/kek/ccsdemo/18446744073709551616",
        "/kek/../ccsdemo/1",
        "/kek/ccsdemo/../1",
        "/kek/%63csdemo/1",
        "/KEK/ccsdemo/1",
        "/Kek/ccsdemo/1",
        "/kek/ccsdemo/1?x=1",
        "/metrics",
        "/healthz/",
        "/kek/ccs.demo/1",
    ] {
        for method in ["GET", "POST"] {
            let reply = server
                .send(tls, method, path, &[("X-DB-Certificate", &good)])
                .await;
            assert_eq!(reply.status, 400, "{method} {path}: {}", reply.body);
            assert!(reply.error().starts_with("Bad request: "), "{}", reply.body);
            assert_eq!(reply.header("cache-control"), Some("no-store"));
        }
    }

    // 405 with Allow: GET, before any certificate check.
    for method in ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let reply = server.send(tls, method, "/kek/ccsdemo/1", &[]).await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET"), "{method}");
    }

    // 401: header missing, empty, doubled, not base64, not a certificate.
    let rows: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "header is missing"),
        (vec![("X-DB-Certificate", "")], "header is empty"),
        (
            vec![("X-DB-Certificate", &good), ("x-db-certificate", &good)],
            "More than one X-DB-Certificate header",
        ),
        (
            vec![("X-DB-Certificate", "%%%not base64%%%")],
            "not valid base64",
        ),
        (
            vec![("X-DB-Certificate", "aGVsbG8gd29ybGQ=")],
            "parsable X.509",
        ),
    ];
    for (headers, want) in rows {
        let reply = server.send(tls, "GET", "/kek/ccsdemo/1", &headers).await;
        assert_eq!(reply.status, 401, "{want}: {}", reply.body);
        assert!(reply.error().contains(want), "{want}: {}", reply.body);
    }

    // 404: unknown key id, instance without keys, disabled key; one message for all three.
    for (path, h) in [
        ("/kek/ccsdemo/2", &good),
        ("/kek/ccsdemo/3", &good),
        ("/kek/nokeys/1", &other),
    ] {
        let reply = server
            .send(tls, "GET", path, &[("X-DB-Certificate", h)])
            .await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert!(
            reply.error().starts_with("No active key for instance"),
            "{}",
            reply.body
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn no_enumeration_certificate_comes_before_any_key_lookup() {
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    let foreign = header(&db_cert("attacker"));
    // Existing and missing keys look the same to a caller without the right certificate.
    for path in ["/kek/ccsdemo/1", "/kek/ccsdemo/2", "/kek/missing/1"] {
        let none = server.get(path, None).await;
        let wrong = server.get(path, Some(&foreign)).await;
        assert_eq!(none.status, 401, "{path}");
        assert_eq!(wrong.status, 401, "{path}");
        assert!(
            wrong.error().contains("Common Name is \"tse_attacker\""),
            "{}",
            wrong.body
        );
    }
}

/// An RSA public key that is only a number: enough to put a 1024-bit key in a certificate.
struct FakeRsaKey(Vec<u8>);

impl FakeRsaKey {
    fn bits(bits: usize) -> Self {
        let len = bits / 8;
        let mut modulus = vec![0xC5u8; len];
        modulus[len - 1] |= 1;
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        let mut n = vec![0x02, 0x81, (len + 1) as u8, 0x00];
        n.extend_from_slice(&modulus);
        let e = [0x02, 0x03, 0x01, 0x00, 0x01];
        let mut der = vec![0x30, 0x81, (n.len() + e.len()) as u8];
        der.extend_from_slice(&n);
        der.extend_from_slice(&e);
        Self(der)
    }
}

impl rcgen::PublicKeyData for FakeRsaKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

#[tokio::test]
async fn near_miss_certificates_are_refused() {
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    let p = pki();
    let rsa = || KeyKind::Rsa2048.generate().unwrap();
    let issue = |params: rcgen::CertificateParams| p.root_a.issue(params, rsa()).unwrap();
    let params = |cn: &str| pki::database_params(cn).unwrap();
    let now = OffsetDateTime::now_utc();

    let mut expired = params("tse_ccsdemo");
    expired.not_before = now - Duration::days(30);
    expired.not_after = now - Duration::days(1);
    let mut not_yet = params("tse_ccsdemo");
    not_yet.not_before = now + Duration::days(1);
    not_yet.not_after = now + Duration::days(30);
    let mut no_cn = params("tse_ccsdemo");
    no_cn.distinguished_name = DistinguishedName::new();
    let mut two_cn = params("tse_ccsdemo");
    // The same attribute under its OID is a second CN entry for rcgen.
    two_cn
        .distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "tse_ccsdemo");
    let mut server_auth = params("tse_ccsdemo");
    server_auth.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let self_key = rsa();
    let self_signed = params("tse_ccsdemo").self_signed(&self_key).unwrap();
    let rsa_1024 = params("tse_ccsdemo")
        .signed_by(&FakeRsaKey::bits(1024), &p.root_a.cert, &p.root_a.key)
        .unwrap();

    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "CN with suffix",
            issue(params("tse_ccsdemox")).cert_der().to_vec(),
            "Common Name is \"tse_ccsdemox\"",
        ),
        (
            "CN with prefix",
            issue(params("xtse_ccsdemo")).cert_der().to_vec(),
            "Common Name is \"xtse_ccsdemo\"",
        ),
        (
            "CN upper case",
            issue(params("TSE_CCSDEMO")).cert_der().to_vec(),
            "Common Name is \"TSE_CCSDEMO\"",
        ),
        (
            "instance upper case",
            issue(params("tse_CCSDEMO")).cert_der().to_vec(),
            "Common Name",
        ),
        (
            "CN without prefix",
            issue(params("ccsdemo")).cert_der().to_vec(),
            "Common Name",
        ),
        (
            "no CN",
            issue(no_cn).cert_der().to_vec(),
            "Common Name is absent",
        ),
        (
            "two CNs",
            issue(two_cn).cert_der().to_vec(),
            "Common Name is given 2 times",
        ),
        (
            "same-name root, other key",
            pki::database(&p.impostor, "ccsdemo")
                .unwrap()
                .cert_der()
                .to_vec(),
            "not issued by a configured trust root",
        ),
        (
            "self-signed",
            self_signed.der().to_vec(),
            "not issued by a configured trust root",
        ),
        ("expired", issue(expired).cert_der().to_vec(), "expired on"),
        (
            "not yet valid",
            issue(not_yet).cert_der().to_vec(),
            "not valid before",
        ),
        (
            "EC key",
            p.root_a
                .issue(params("tse_ccsdemo"), KeyKind::EcP256.generate().unwrap())
                .unwrap()
                .cert_der()
                .to_vec(),
            "elliptic-curve key; an RSA key is required",
        ),
        (
            "RSA-1024",
            rsa_1024.der().to_vec(),
            "RSA key has 1024 bits; at least 2048",
        ),
        (
            "CA certificate",
            issue(pki::ca_params("tse_ccsdemo")).cert_der().to_vec(),
            "CA certificate",
        ),
        (
            "EKU serverAuth only",
            issue(server_auth).cert_der().to_vec(),
            "clientAuth",
        ),
        ("the root itself", p.root_a.cert_der().to_vec(), "invalid"),
    ];
    for (what, der, want) in rows {
        let h = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
        let reply = server.get("/kek/ccsdemo/1", Some(&h)).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert!(
            reply.error().contains(want),
            "{what}: want {want:?} in {}",
            reply.body
        );
        assert!(reply.json().get("wrappedKey").is_none(), "{what}");
    }

    // Trailing bytes after a good certificate are not ignored.
    let mut der = db_cert("ccsdemo").cert_der().to_vec();
    der.push(0);
    let h = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    assert_eq!(server.get("/kek/ccsdemo/1", Some(&h)).await.status, 401);
}

#[tokio::test]
async fn the_published_database_certificate_is_refused_for_its_issuer() {
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ccsdemo-db-certificate.b64"
    ))
    .expect("tests/fixtures/ccsdemo-db-certificate.b64");
    let reply = server.get("/kek/ccsdemo/1", Some(fixture.trim())).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply
            .error()
            .contains("not issued by a configured trust root")
            && reply.error().contains("ServiceNow TSECSK Root CA - G1"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn kill_switches_and_validity() {
    let past = "not_after = \"2020-01-01T00:00:00Z\"";
    let soon = OffsetDateTime::now_utc() + Duration::minutes(30);
    let soon_text = soon
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let soon_line: &'static str =
        Box::leak(format!("not_after = \"{soon_text}\"").into_boxed_str());
    let server = TestServer::start(
        &[
            Key::new("ccsdemo", 1).with(past),
            Key::new("ccsdemo", 2).with(soon_line),
            Key::new("ccsdemo", 3).with("not_after = \"2100-01-01T00:00:00Z\""),
            Key::new("ccsdemo", 4).with("disabled = false"),
        ],
        "validity = \"1h\"",
    )
    .await;
    let cert = db_cert("ccsdemo");
    let h = header(&cert);

    // Hard kill switch: 200 with the past validUntil.
    let reply = server.get("/kek/ccsdemo/1", Some(&h)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["validUntil"], "2020-01-01T00:00:00.000Z");

    // not_after before now + validity wins; otherwise now + validity (here 1h).
    let reply = server.get("/kek/ccsdemo/1", Some(&h)).await;
    assert_eq!(reply.status, 200);
    let reply = server.get("/kek/ccsdemo/2", Some(&h)).await;
    let want = soon.replace_nanosecond(0).unwrap();
    assert_eq!(
        parse_valid_until(reply.json()["validUntil"].as_str().unwrap()),
        want
    );
    for id in [3, 4] {
        let before = OffsetDateTime::now_utc();
        let reply = server.get(&format!("/kek/ccsdemo/{id}"), Some(&h)).await;
        let t = parse_valid_until(reply.json()["validUntil"].as_str().unwrap());
        assert!(
            t > before + Duration::minutes(59) && t <= before + Duration::minutes(61),
            "{t}"
        );
    }
}

/// A secrets backend whose wrapping always fails, to reach the 500 row.
struct BrokenSecrets;

impl Secrets for BrokenSecrets {
    fn wrap(&self, _: &KeyState, _: &RecipientKey, _: WrapOptions) -> Result<Vec<u8>, LookupError> {
        Err(LookupError::Wrap(WrapError::Encrypt))
    }
}

#[tokio::test]
async fn an_internal_failure_is_500_with_an_error_id_and_nothing_else() {
    let server = TestServer::start_with(&[Key::new("ccsdemo", 1)], "", |daemon| {
        let keys = daemon.state.keys.store().list();
        let broken = KeyStore::new(keys, Arc::new(BrokenSecrets));
        daemon.state.set_keys(Arc::new(broken));
    })
    .await;
    let reply = server
        .get("/kek/ccsdemo/1", Some(&header(&db_cert("ccsdemo"))))
        .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let body = reply.json();
    let id = body["errorId"].as_str().unwrap();
    assert_eq!(id.len(), 16);
    assert!(body["error"].as_str().unwrap().contains(id));
    assert!(
        !reply.body.contains("RSA-OAEP"),
        "the detail stays in the log: {}",
        reply.body
    );
    assert_eq!(reply.header("x-request-id"), Some(id));
}

#[tokio::test]
async fn certificates_must_be_rsa_of_at_least_min_rsa_bits() {
    // min_rsa_bits = 3072 refuses RSA-2048 and accepts RSA-3072.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[keys]", "min_rsa_bits = 3072\n[keys]");
    std::fs::write(&config, text).unwrap();
    let state = ccs_endpoint::runtime::Loaded::from_file(&config).unwrap();
    let instance = InstanceName::parse("ccsdemo").unwrap();
    let now = OffsetDateTime::now_utc();
    let small = db_cert("ccsdemo");
    let err = state
        .trust
        .verify(small.cert_der(), &instance, now)
        .unwrap_err();
    assert!(
        err.error.to_string().contains("2048 bits; at least 3072"),
        "{}",
        err.error
    );
    let big = pki()
        .root_a
        .issue(
            pki::database_params("tse_ccsdemo").unwrap(),
            KeyKind::Rsa3072.generate().unwrap(),
        )
        .unwrap();
    let ok = state.trust.verify(big.cert_der(), &instance, now).unwrap();
    assert_eq!(ok.recipient.bits(), 3072);
}

#[tokio::test]
async fn no_answer_carries_key_material() {
    let keys = [
        Key::new("ccsdemo", 1),
        Key::new("ccsdemo", 2).with("disabled = true"),
        Key::new("ccsdemo", 3).with("not_after = \"2020-01-01T00:00:00Z\""),
    ];
    let secrets: Vec<String> = keys.iter().map(|k| k.secret.clone()).collect();
    let server = TestServer::start(&keys, "").await;
    let good = header(&db_cert("ccsdemo"));
    let foreign = header(&db_cert("other"));
    let tls = &rustls::version::TLS13;
    let mut bodies = Vec::new();
    for (method, path, cert) in [
        ("GET", "/kek/ccsdemo/1", Some(&good)),
        ("GET", "/kek/ccsdemo/2", Some(&good)),
        ("GET", "/kek/ccsdemo/3", Some(&good)),
        ("GET", "/kek/ccsdemo/4", Some(&good)),
        ("GET", "/kek/ccsdemo/1", Some(&foreign)),
        ("GET", "/kek/ccsdemo/1", None),
        ("POST", "/kek/ccsdemo/1", Some(&good)),
        ("GET", "/kek/ccsdemo/1/", Some(&good)),
    ] {
        let headers: Vec<(&str, &str)> = cert
            .map(|c| ("X-DB-Certificate", c.as_str()))
            .into_iter()
            .collect();
        let reply = server.send(tls, method, path, &headers).await;
        bodies.push(format!("{:?} {}", reply.headers, reply.body));
    }
    let (_, metrics) = server.admin_get("/metrics").await;
    bodies.push(metrics);
    let all = bodies.join("\n");
    for secret in &secrets {
        for form in support::process::leak_forms(secret) {
            assert!(!all.contains(&form), "an answer carries a form of a secret");
        }
    }
}
