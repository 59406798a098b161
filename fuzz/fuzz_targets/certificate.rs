//! The header → certificate decision, on arbitrary bytes and on mutations of the valid
//! certificates the seed corpus holds: never panics, and nothing but the one certificate the
//! configured root really issued is ever accepted.
#![no_main]

use std::sync::OnceLock;

use ccs_endpoint::cert::TrustStore;
use ccs_endpoint::tools::pki::{self, KeyKind};
use ccs_endpoint::protocol::InstanceName;
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;

struct Fixture {
    trust: TrustStore,
    good: Vec<u8>,
    instance: InstanceName,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = pki::ca("fuzz root", KeyKind::Rsa2048).expect("root");
        let good = pki::database(&root, "ccsdemo")
            .expect("leaf")
            .cert_der()
            .to_vec();
        let trust = TrustStore::from_certs(
            vec![(
                "root.pem".into(),
                CertificateDer::from(root.cert_der().to_vec()),
            )],
            2048,
        )
        .expect("trust store");
        Fixture {
            trust,
            good,
            instance: InstanceName::parse("ccsdemo").expect("name"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let now = time::OffsetDateTime::now_utc();
    // As DER: only the fixture's own certificate may pass.
    if f.trust.verify(data, &f.instance, now).is_ok() {
        assert_eq!(data, f.good.as_slice());
    }
    // As a header value (base64, through the cache).
    if f.trust.verify_header(data, &f.instance, now).is_ok() {
        let der = ccs_endpoint::cert::decode_base64(data).expect("it decoded once");
        assert_eq!(der, f.good);
    }
});
