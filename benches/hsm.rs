//! The per-request cost of the PKCS#11 backend (SoftHSM2) against the file backend, same run:
//! `KeyStore::wrap_for` uncached (the first poll of a certificate after a reload; later polls
//! are answered from the per-snapshot cache whatever the backend), on one thread and on four.
//! `scripts/bench-hsm.sh` runs it. Needs SoftHSM2 (`apt-get install softhsm2`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use ccs_endpoint::config::{PinSource, Pkcs11Config, TokenSelector};
use ccs_endpoint::hsm::Hsm;
use ccs_endpoint::keystore::{label, KeySource, KeyStore};
use ccs_endpoint::protocol::InstanceName;
use ccs_endpoint::secret::Secret;
use ccs_endpoint::tools::pki::{self, KeyKind};
use ccs_endpoint::wrap::{RecipientKey, WrapOptions};

/// Microseconds per call of `f` over `iterations` calls on each of `threads` threads.
fn time_it(name: &str, iterations: u32, threads: u32, f: impl Fn() + Sync) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..iterations {
                    f();
                }
            });
        }
    });
    let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations * threads);
    println!("{name:<44} {micros:>9.2} us/op");
    micros
}

fn main() {
    let module = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.exists())
    .expect("SoftHSM2 is needed: apt-get install softhsm2");
    let iterations: u32 = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.path().join("tokens").display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ])
        .output()
        .unwrap();
    assert!(init.status.success());
    std::fs::write(dir.path().join("pin"), "1234").unwrap();

    let options = WrapOptions::default();
    let config = Pkcs11Config {
        module: module.to_owned(),
        token: TokenSelector::Label("bench".into()),
        pin: PinSource::File(dir.path().join("pin")),
        sessions: 4,
        reinitialize_after: std::time::Duration::from_secs(30),
    };
    let hsm = Arc::new(Hsm::open(&config, options).unwrap());
    let secret = Secret::generate().unwrap();
    let instance = InstanceName::parse("bench").unwrap();
    hsm.create(&label(&instance, 1), &secret, false).unwrap();
    let hex = String::from_utf8(secret.to_hex().to_vec()).unwrap();
    let states = dir.path().join("states.toml");
    std::fs::write(
        &states,
        format!(
            "[[key]]\ninstance = \"bench\"\nkey_id = 1\nkcv = \"{}\"\n",
            secret.kcv()
        ),
    )
    .unwrap();
    let token = KeySource::Token(Arc::clone(&hsm)).load(&states).unwrap();
    let file = KeySource::File
        .parse(
            Path::new("keys.toml"),
            &format!("[[key]]\ninstance = \"bench\"\nkey_id = 1\nsecret = \"{hex}\"\n"),
        )
        .unwrap();

    let root = pki::ca("bench root", KeyKind::Rsa4096).unwrap();
    let db = root
        .issue(
            pki::database_params("tse_bench").unwrap(),
            KeyKind::Rsa2048.generate().unwrap(),
        )
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(db.cert_der()).unwrap();
    let recipient = RecipientKey::from_spki_der(parsed.public_key().raw).unwrap();

    let wrap = |store: &KeyStore| {
        std::hint::black_box(store.wrap_for(&instance, 1, &recipient, options).unwrap());
    };
    let f1 = time_it("wrap_for file, 1 thread", iterations * 10, 1, || {
        wrap(&file)
    });
    let t1 = time_it(
        "wrap_for pkcs11 (softhsm2), 1 thread",
        iterations,
        1,
        || wrap(&token),
    );
    let f4 = time_it("wrap_for file, 4 threads", iterations * 10, 4, || {
        wrap(&file)
    });
    let t4 = time_it(
        "wrap_for pkcs11 (softhsm2), 4 threads",
        iterations,
        4,
        || wrap(&token),
    );
    println!("ratio pkcs11/file, 1 thread:  {:>6.1}x", t1 / f1);
    println!("ratio pkcs11/file, 4 threads: {:>6.1}x", t4 / f4);
}
