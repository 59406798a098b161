//! Criterion microbenchmarks of the request path's pieces: path parse, header decode,
//! certificate verification (cold and through the cache), the wrap, the head guard's
//! judgement of a request head, and key-store loading.
//! `cargo bench --bench request_path`; BENCHMARKS.md has the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;

use ccs_endpoint::cert::{self, TrustStore};
use ccs_endpoint::keystore::KeySource;
use ccs_endpoint::protocol::{parse_kek_path, InstanceName};
use ccs_endpoint::secret::Secret;
use ccs_endpoint::tools::pki::{self, KeyKind};
use ccs_endpoint::wrap::{wrap, WrapOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

fn key_store_text(entries: usize) -> String {
    let mut text = String::with_capacity(entries * 120);
    for i in 0..entries {
        let secret = Secret::generate().unwrap();
        let hex = secret.to_hex();
        text.push_str(&format!(
            "[[key]]\ninstance = \"instance{i}\"\nkey_id = 1\nsecret = \"{}\"\n",
            std::str::from_utf8(hex.as_slice()).unwrap()
        ));
    }
    text
}

fn request_path(c: &mut Criterion) {
    let root = pki::ca("bench root", KeyKind::Rsa4096).unwrap();
    let db = pki::database(&root, "ccsdemo").unwrap();
    let header = ccs_endpoint::tools::inspect::header_value(db.cert_der());
    let trust = TrustStore::from_certs(
        vec![(
            PathBuf::from("root.pem"),
            CertificateDer::from(root.cert_der().to_vec()),
        )],
        2048,
    )
    .unwrap();
    let instance = InstanceName::parse("ccsdemo").unwrap();
    let now = OffsetDateTime::now_utc();

    c.bench_function("path parse", |b| {
        b.iter(|| parse_kek_path(black_box("/kek/ccsdemo/1")).unwrap())
    });
    c.bench_function("header decode (base64)", |b| {
        b.iter(|| cert::decode_header([black_box(header.as_bytes())].into_iter()).unwrap())
    });
    let der = cert::decode_header([header.as_bytes()].into_iter()).unwrap();
    c.bench_function("verify cold (parse + chain, RSA-4096 root)", |b| {
        b.iter(|| trust.verify(black_box(&der), &instance, now).unwrap())
    });
    trust
        .verify_header(header.as_bytes(), &instance, now)
        .unwrap();
    c.bench_function("verify cached (SHA-256 of header + clock + CN)", |b| {
        b.iter(|| {
            trust
                .verify_header(black_box(header.as_bytes()), &instance, now)
                .unwrap()
        })
    });
    let recipient = trust.verify(&der, &instance, now).unwrap().recipient;
    let secret = Secret::generate().unwrap();
    c.bench_function("wrap RSA-2048 oaep-sha1 hex", |b| {
        b.iter(|| wrap(&secret, &recipient, WrapOptions::default()).unwrap())
    });

    // The head guard's judgement of a poll's request head (about 1.8 KiB with the header).
    let head = format!(
        "GET /kek/ccsdemo/1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Java/17\r\nAccept: */*\r\nX-DB-Certificate: {header}\r\n\r\n"
    );
    c.bench_function("head guard judge (poll head)", |b| {
        b.iter(|| ccs_endpoint::server::head_guard::judge(black_box(head.as_bytes()), 16 * 1024))
    });

    let mut group = c.benchmark_group("key store load");
    group.sample_size(10);
    for entries in [1_000, 100_000] {
        let text = key_store_text(entries);
        group.bench_function(format!("{entries} entries"), |b| {
            b.iter(|| {
                KeySource::File
                    .parse(std::path::Path::new("keys.toml"), black_box(&text))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
