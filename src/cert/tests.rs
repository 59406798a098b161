//! Unit tables for `cert`.

use super::*;

#[test]
fn header_decoding() {
    let one = |v: &'static [u8]| decode_header([v].into_iter());
    assert_eq!(decode_header(std::iter::empty()), Err(CertError::Missing));
    assert_eq!(one(b""), Err(CertError::Empty));
    assert_eq!(one(b"   "), Err(CertError::Empty));
    assert_eq!(
        decode_header([&b"AAAA"[..], &b"AAAA"[..]].into_iter()),
        Err(CertError::Multiple)
    );
    assert!(matches!(one(b"not base64!"), Err(CertError::NotBase64(_))));
    assert!(matches!(one(b"AA-_"), Err(CertError::NotBase64(_))));
    assert_eq!(one(b"AAEC"), Ok(vec![0, 1, 2]));
    assert_eq!(one(b"AAE="), Ok(vec![0, 1]));
    assert_eq!(one(b"AAE"), Ok(vec![0, 1]));
    let long = vec![b'A'; MAX_HEADER_LEN + 4];
    assert_eq!(
        decode_header([long.as_slice()].into_iter()),
        Err(CertError::TooLong(MAX_HEADER_LEN + 4))
    );
}

#[test]
fn refusals_say_what_to_fix_not_what_the_parser_said() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let root = crate::tools::pki::ca("m", crate::tools::pki::KeyKind::Rsa2048)
        .unwrap_or_else(|e| panic!("{e}"));
    let trust = store(&[&root]);
    let leaf = crate::tools::pki::database(&root, "ccsdemo").unwrap_or_else(|e| panic!("{e}"));
    let der = leaf.cert_der();
    let rows: Vec<(Vec<u8>, &str)> = vec![
        (
            b"-----BEGIN CERTIFICATE-----MIIB".to_vec(),
            "looks like PEM",
        ),
        (b"MIIB-_xx".to_vec(), "URL-safe alphabet"),
        (b"MIIB!MIIB".to_vec(), "not a base64 character"),
        (b"MIIB MIIB".to_vec(), "space or line break"),
        (b"MIIBx".to_vec(), "cut short"),
        (
            b64(b"-----BEGIN CERTIFICATE-----\n").into_bytes(),
            "base64 of PEM text",
        ),
        (b64(b"hello world").into_bytes(), "not DER"),
        (b64(&der[..der.len() / 2]).into_bytes(), "cut short"),
    ];
    let now = OffsetDateTime::now_utc();
    for (value, want) in rows {
        let message = trust
            .verify_header(&value, &name("ccsdemo"), now)
            .err()
            .map(|r| r.error.to_string())
            .unwrap_or_default();
        assert!(message.contains(want), "{want}: {message}");
        for internal in ["Invalid", "NomError", "Eof", "offset"] {
            assert!(!message.contains(internal), "{message}");
        }
    }
}

#[test]
fn modulus_bit_lengths() {
    assert_eq!(modulus_bits(&[]), 0);
    assert_eq!(modulus_bits(&[0, 0]), 0);
    assert_eq!(modulus_bits(&[0x80, 0]), 16);
    assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
    assert_eq!(modulus_bits(&[0, 0x7f, 0]), 15);
    assert_eq!(modulus_bits(&[1]), 1);
}

fn fixture_der() -> Vec<u8> {
    let b64 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ccsdemo-db-certificate.b64"
    ));
    let Ok(b64) = b64 else {
        panic!("tests/fixtures/ccsdemo-db-certificate.b64 is missing from the checkout");
    };
    decode_header([b64.as_slice()].into_iter()).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn name(s: &str) -> InstanceName {
    InstanceName::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_published_database_certificate_parses_and_is_refused_for_its_issuer() {
    let der = fixture_der();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(common_name(&cert).as_deref(), Ok("tse_ccsdemo"));
    let Ok(PublicKey::RSA(rsa)) = cert.public_key().parsed() else {
        panic!("the fixture holds an RSA key");
    };
    assert_eq!(modulus_bits(rsa.modulus), 2048);

    let root = crate::tools::pki::ca("test root", crate::tools::pki::KeyKind::Rsa2048)
        .unwrap_or_else(|e| panic!("{e}"));
    let trust = store(&[&root]);
    let rejected = trust
        .verify(&der, &name("ccsdemo"), OffsetDateTime::now_utc())
        .err()
        .unwrap_or_else(|| panic!("a foreign certificate was accepted"));
    assert_eq!(rejected.error.reason(), "cert_unknown_issuer");
    assert!(rejected
        .error
        .to_string()
        .contains("ServiceNow TSECSK Root CA - G1"));
    // Even after it expires, the issuer is what it hears about first.
    let later = OffsetDateTime::now_utc() + time::Duration::days(3650);
    let rejected = trust.verify(&der, &name("ccsdemo"), later).err();
    assert_eq!(
        rejected.map(|r| r.error.reason()),
        Some("cert_unknown_issuer")
    );
    let identity = trust
        .verify(&der, &name("ccsdemo"), later)
        .err()
        .and_then(|r| r.identity)
        .unwrap_or_else(|| panic!("a parsed certificate has an identity"));
    assert_eq!(
        identity.serial,
        "1c:46:c6:44:18:12:14:e2:36:b1:2b:14:63:c0:2f:c0:e1:28:b3:01"
    );
}

pub(super) fn store(roots: &[&crate::tools::pki::Issued]) -> TrustStore {
    let certs = roots
        .iter()
        .map(|r| {
            (
                PathBuf::from("roots.pem"),
                CertificateDer::from(r.cert_der().to_vec()),
            )
        })
        .collect();
    TrustStore::from_certs(certs, MIN_RSA_BITS_FLOOR).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn decisions() {
    use crate::tools::pki::{self, KeyKind};
    let ok = |r: Result<pki::Issued, pki::Error>| r.unwrap_or_else(|e| panic!("{e}"));
    let root = ok(pki::ca("decision root", KeyKind::Rsa2048));
    let other_root = ok(pki::ca("decision root", KeyKind::Rsa2048));
    let trust = store(&[&root]);
    let params = |cn: &str| pki::database_params(cn).unwrap_or_else(|e| panic!("{e}"));
    let rsa = || {
        KeyKind::Rsa2048
            .generate()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let good = ok(pki::database(&root, "ccsdemo"));
    let ec = ok(root.issue(
        params("tse_ccsdemo"),
        KeyKind::EcP256.generate().unwrap_or_else(|e| panic!("{e}")),
    ));
    let ca_as_leaf = ok(root.issue(pki::ca_params("tse_ccsdemo"), rsa()));
    let impostor = ok(pki::database(&other_root, "ccsdemo"));
    // Found by tests/properties.rs: a same-name root with another key type.
    let ec_root = ok(pki::ca("decision root", KeyKind::EcP256));
    let ec_impostor = ok(pki::database(&ec_root, "ccsdemo"));
    let now = OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let valid_from = good_not_before(&good);

    let rows: Vec<(&str, &pki::Issued, &str, OffsetDateTime, Option<&str>)> = vec![
        ("good", &good, "ccsdemo", now, None),
        (
            "good, another instance",
            &good,
            "ccsdemo2",
            now,
            Some("cert_wrong_cn"),
        ),
        (
            "good, instance in upper case",
            &good,
            "CCSDEMO",
            now,
            Some("cert_wrong_cn"),
        ),
        (
            "good, before notBefore",
            &good,
            "ccsdemo",
            valid_from - day,
            Some("cert_not_yet_valid"),
        ),
        (
            "good, after notAfter",
            &good,
            "ccsdemo",
            now + day * 800,
            Some("cert_expired"),
        ),
        ("EC key", &ec, "ccsdemo", now, Some("cert_not_rsa")),
        (
            "CA certificate",
            &ca_as_leaf,
            "ccsdemo",
            now,
            Some("cert_chain_invalid"),
        ),
        (
            "same-name root, other key",
            &impostor,
            "ccsdemo",
            now,
            Some("cert_unknown_issuer"),
        ),
        (
            "same-name root, EC key",
            &ec_impostor,
            "ccsdemo",
            now,
            Some("cert_unknown_issuer"),
        ),
        (
            "the root itself",
            &root,
            "ccsdemo",
            now,
            Some("cert_chain_invalid"),
        ),
    ];
    for (what, cert, instance, at, want) in rows {
        let got = trust.verify(cert.cert_der(), &name(instance), at);
        match (want, got) {
            (None, Ok(verified)) => {
                assert_eq!(verified.recipient.bits(), 2048);
                assert_eq!(
                    verified.verified_by,
                    "O=ccs-endpoint development, CN=decision root"
                );
                assert_eq!(verified.identity.sha256, Fingerprint::of(cert.cert_der()));
            }
            (Some(reason), Err(rejected)) => {
                assert_eq!(
                    rejected.error.reason(),
                    reason,
                    "{what}: {}",
                    rejected.error
                )
            }
            (want, got) => panic!("{what}: want {want:?}, got {:?}", got.map(|v| v.identity)),
        }
    }
    // Both roots configured: the impostor's own root now verifies it, the first still works.
    let both = store(&[&root, &other_root]);
    assert!(both
        .verify(impostor.cert_der(), &name("ccsdemo"), now)
        .is_ok());
    assert!(both.verify(good.cert_der(), &name("ccsdemo"), now).is_ok());
}

fn good_not_before(cert: &crate::tools::pki::Issued) -> OffsetDateTime {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.cert_der()).unwrap_or_else(|e| panic!("{e}"));
    parsed.validity().not_before.to_datetime()
}

#[test]
fn the_cache_keeps_checking_the_clock_and_the_instance() {
    use crate::tools::pki::{self, KeyKind};
    let root = pki::ca("cache root", KeyKind::Rsa2048).unwrap_or_else(|e| panic!("{e}"));
    let trust = store(&[&root]);
    let db = pki::database(&root, "ccsdemo").unwrap_or_else(|e| panic!("{e}"));
    let header = crate::tools::inspect::header_value(db.cert_der());
    let now = OffsetDateTime::now_utc();
    let ok = trust.verify_header(header.as_bytes(), &name("ccsdemo"), now);
    assert!(ok.is_ok());
    assert_eq!(trust.cached(), 1);
    let again = trust.verify_header(header.as_bytes(), &name("ccsdemo"), now);
    assert_eq!(
        again.map(|v| v.identity).ok(),
        ok.map(|v| v.identity).ok(),
        "a cache hit answers as a fresh verification"
    );
    assert_eq!(trust.cached(), 1);
    let reason = |r: Result<VerifiedCert, Rejected>| r.err().map(|r| r.error.reason());
    let later = now + time::Duration::days(800);
    assert_eq!(
        reason(trust.verify_header(header.as_bytes(), &name("ccsdemo"), later)),
        Some("cert_expired")
    );
    let before = now - time::Duration::days(1);
    assert_eq!(
        reason(trust.verify_header(header.as_bytes(), &name("ccsdemo"), before)),
        Some("cert_not_yet_valid")
    );
    assert_eq!(
        reason(trust.verify_header(header.as_bytes(), &name("other"), now)),
        Some("cert_wrong_cn")
    );
    // What fails the chain is not cached.
    let foreign = pki::ca("cache root", KeyKind::Rsa2048).unwrap_or_else(|e| panic!("{e}"));
    let stranger = pki::database(&foreign, "ccsdemo").unwrap_or_else(|e| panic!("{e}"));
    let h = crate::tools::inspect::header_value(stranger.cert_der());
    assert_eq!(
        reason(trust.verify_header(h.as_bytes(), &name("ccsdemo"), now)),
        Some("cert_unknown_issuer")
    );
    assert_eq!(
        reason(trust.verify_header(b"%%%", &name("ccsdemo"), now)),
        Some("cert_not_base64")
    );
    assert_eq!(trust.cached(), 1);
}
