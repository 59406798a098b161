//! The per-request crypto, timed: RSA-OAEP wrap (the default options and SHA-256) and the full
//! certificate verification of a database certificate. `scripts/bench-wrap.sh` runs this beside
//! `openssl speed` and prints the ratios. Plain timing loops (no harness): numbers, not verdicts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use ccs_endpoint::cert::TrustStore;
use ccs_endpoint::protocol::InstanceName;
use ccs_endpoint::secret::Secret;
use ccs_endpoint::tools::pki::{self, KeyKind};
use ccs_endpoint::wrap::{wrap, Padding, Plaintext, RecipientKey, WrapOptions};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

fn time_it(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("{name:<32} {micros:>9.2} us/op");
}

fn main() {
    let iterations: u32 = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    for (kind, bits) in [(KeyKind::Rsa2048, 2048), (KeyKind::Rsa4096, 4096)] {
        let root = pki::ca("bench root", KeyKind::Rsa4096).unwrap();
        let db = root
            .issue(
                pki::database_params("tse_bench").unwrap(),
                kind.generate().unwrap(),
            )
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(db.cert_der()).unwrap();
        let recipient = RecipientKey::from_spki_der(parsed.public_key().raw).unwrap();
        let secret = Secret::generate().unwrap();
        for padding in [Padding::OaepSha1, Padding::OaepSha256] {
            let options = WrapOptions {
                padding,
                plaintext: Plaintext::Hex,
            };
            time_it(
                &format!("wrap rsa{bits} {}", padding.name()),
                iterations,
                || {
                    black_box(wrap(&secret, &recipient, options).unwrap());
                },
            );
        }
        let trust = TrustStore::from_certs(
            vec![(
                "root".into(),
                CertificateDer::from(root.cert_der().to_vec()),
            )],
            2048,
        )
        .unwrap();
        let instance = InstanceName::parse("bench").unwrap();
        let now = OffsetDateTime::now_utc();
        time_it(
            &format!("verify leaf-rsa{bits} root-rsa4096"),
            iterations / 4,
            || {
                black_box(trust.verify(db.cert_der(), &instance, now).unwrap());
            },
        );
    }
}
