//! Properties over generated inputs (proptest): the path parser accepts exactly the documented
//! form, nothing that does not chain to a configured root is ever accepted (random issuers,
//! random bytes, every single-byte mutation of a valid certificate), and a decision depends only
//! on the certificate, the instance and the clock — not on the cache or the order of requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;

use ccs_endpoint::cert::TrustStore;
use ccs_endpoint::protocol::{parse_kek_path, InstanceName};
use ccs_endpoint::tools::pki::{self, Issued, KeyKind};
use proptest::prelude::*;
use rustls::pki_types::CertificateDer;
use support::pki as test_pki;
use time::OffsetDateTime;

/// The contract's path grammar, written independently of the parser.
fn documented(path: &str) -> Option<(String, u64)> {
    let rest = path.strip_prefix("/kek/")?;
    let (instance, key_id) = rest.split_once('/')?;
    let name_ok = (1..=63).contains(&instance.len())
        && instance
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let id_ok = !key_id.is_empty() && key_id.chars().all(|c| c.is_ascii_digit());
    if !(name_ok && id_ok) {
        return None;
    }
    Some((instance.to_owned(), key_id.parse().ok()?))
}

fn path_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[A-Za-z0-9_-]{0,70}",
        "[0-9]{0,25}",
        ".{0,12}",
        Just("..".to_owned()),
        Just("%2F".to_owned()),
        Just("+1".to_owned()),
    ];
    (
        prop_oneof![
            Just("/kek/"),
            Just("/KEK/"),
            Just("/kek"),
            Just("kek/"),
            Just("//kek/"),
            Just("/")
        ],
        piece.clone(),
        prop_oneof![Just("/"), Just("//"), Just(""), Just("/x/")],
        piece,
        prop_oneof![Just(""), Just("/"), Just("/1"), Just("?q")],
    )
        .prop_map(|(a, b, c, d, e)| format!("{a}{b}{c}{d}{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_accepts_exactly_the_documented_paths(path in path_strategy()) {
        let parsed = parse_kek_path(&path).ok().map(|p| (p.instance.as_str().to_owned(), p.key_id));
        prop_assert_eq!(parsed, documented(&path), "{:?}", path);
    }

    #[test]
    fn every_documented_path_parses_back(
        instance in "[A-Za-z0-9_-]{1,63}",
        key_id in any::<u64>(),
    ) {
        let p = parse_kek_path(&format!("/kek/{instance}/{key_id}")).unwrap();
        prop_assert_eq!(p.instance.as_str(), instance.as_str());
        prop_assert_eq!(p.key_id, key_id);
    }
}

struct Fixture {
    trust: TrustStore,
    good: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let p = test_pki();
        let trust = fixture_store();
        let good = pki::database(&p.root_a, "ccsdemo")
            .unwrap()
            .cert_der()
            .to_vec();
        Fixture { trust, good }
    })
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn ccsdemo() -> InstanceName {
    InstanceName::parse("ccsdemo").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A foreign CA (even one named like a configured root) with any profile never gets in.
    #[test]
    fn a_foreign_issuer_is_always_refused(
        ca_name in prop_oneof![Just("snc-db-encrypt".to_owned()), Just("snc-db-ejbca-root".to_owned()), "[a-z ]{1,20}"],
        instance in "[a-z0-9]{1,10}",
        ca_ec in any::<bool>(),
    ) {
        let ca = pki::ca(&ca_name, if ca_ec { KeyKind::EcP256 } else { KeyKind::Rsa2048 }).unwrap();
        let leaf: Issued = pki::database(&ca, &instance).unwrap();
        let name = InstanceName::parse(&instance).unwrap();
        let result = fixture().trust.verify(leaf.cert_der(), &name, now());
        prop_assert!(result.is_err());
        prop_assert_eq!(result.err().map(|r| r.error.reason()), Some("cert_unknown_issuer"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Any change to a valid certificate is refused (and never panics).
    #[test]
    fn a_mutated_certificate_is_never_accepted(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let f = fixture();
        let mut der = f.good.clone();
        let i = index.index(der.len());
        prop_assume!(der[i] != byte);
        der[i] = byte;
        prop_assert!(f.trust.verify(&der, &ccsdemo(), now()).is_err());
    }

    /// Arbitrary bytes, as DER or as a header value, are refused (and never panic).
    #[test]
    fn arbitrary_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let f = fixture();
        prop_assert!(f.trust.verify(&bytes, &ccsdemo(), now()).is_err());
        prop_assert!(f.trust.verify_header(&bytes, &ccsdemo(), now()).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The cached path (`verify_header`) decides exactly as a fresh verification, whatever
    /// came before: the answer depends on the certificate, the instance and the clock only.
    #[test]
    fn decisions_do_not_depend_on_history(
        requests in prop::collection::vec((0usize..4, 0usize..3, -800i64..800), 1..12),
    ) {
        let p = test_pki();
        static CERTS: OnceLock<Vec<String>> = OnceLock::new();
        let certs = CERTS.get_or_init(|| {
            [
                pki::database(&p.root_a, "ccsdemo").unwrap(),
                pki::database(&p.root_b, "ccsdemo").unwrap(),
                pki::database(&p.root_a, "other").unwrap(),
                pki::database(&p.impostor, "ccsdemo").unwrap(),
            ]
            .iter()
            .map(|c| ccs_endpoint::tools::inspect::header_value(c.cert_der()))
            .collect()
        });
        let instances = ["ccsdemo", "other", "third"].map(|i| InstanceName::parse(i).unwrap());
        // One store lives through the whole history; the reference is fresh for every request.
        let cached = fixture_store();
        let start = now();
        for (cert, instance, days) in requests {
            let at = start + time::Duration::days(days);
            let value = certs[cert].as_bytes();
            let through_cache = cached.verify_header(value, &instances[instance], at);
            let fresh = fixture_store().verify_header(value, &instances[instance], at);
            prop_assert_eq!(
                through_cache.map(|v| v.identity).map_err(|r| r.error),
                fresh.map(|v| v.identity).map_err(|r| r.error)
            );
        }
    }
}

fn fixture_store() -> TrustStore {
    let p = test_pki();
    TrustStore::from_certs(
        vec![
            (
                PathBuf::from("a.pem"),
                CertificateDer::from(p.root_a.cert_der().to_vec()),
            ),
            (
                PathBuf::from("b.pem"),
                CertificateDer::from(p.root_b.cert_der().to_vec()),
            ),
        ],
        2048,
    )
    .unwrap()
}
