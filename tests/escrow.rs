//! Escrow through the binary: `keys export` writes a key that OpenSSL (an independent
//! implementation) unwraps with the escrow key, in both formats; `keys import --from-escrow`
//! restores it, and refuses the wrong key, a changed record and a mismatched instance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Output;

use base64::Engine;
use ccs_endpoint::tools::pki::{self, KeyKind};
use support::process::*;
use support::{openssl_unwrap, write_private};

fn run(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The secret (hex) of `instance`'s key 1 in a key-store file.
fn secret_of(path: &Path, instance: &str) -> String {
    let table: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    table["key"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["instance"].as_str() == Some(instance))
        .and_then(|k| k["secret"].as_str())
        .unwrap_or_else(|| panic!("no key for {instance}"))
        .to_owned()
}

#[test]
fn export_is_unwrapped_by_openssl_and_import_restores_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let escrow = pki::ca("escrow", KeyKind::Rsa3072).unwrap();
    std::fs::write(d.join("escrow.crt"), escrow.cert_pem()).unwrap();
    write_private(&d.join("escrow.key"), &escrow.key_pem());
    let other = pki::ca("another escrow", KeyKind::Rsa2048).unwrap();
    write_private(&d.join("other.key"), &other.key_pem());

    let keys = |args: &[&str]| run(&[&["keys"], args, &["--file", "keys.toml"]].concat(), d);
    let made = keys(&[
        "generate",
        "--instance",
        "ccsdemo",
        "--key-id",
        "1",
        "--create",
    ]);
    assert!(made.status.success(), "{}", text(&made));
    let secret = hex::decode(secret_of(&d.join("keys.toml"), "ccsdemo")).unwrap();

    // `keys export` of ccsdemo's key 1 to the escrow certificate, with `extra` arguments.
    let export = |extra: &[&str]| {
        keys(
            &[
                &[
                    "export",
                    "--instance",
                    "ccsdemo",
                    "--key-id",
                    "1",
                    "--to",
                    "escrow.crt",
                ][..],
                extra,
            ]
            .concat(),
        )
    };

    // The escrow record: OpenSSL unwraps the raw 32 bytes with the escrow key.
    let out = export(&["--out", "escrow.json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("exported instance ccsdemo key_id 1"));
    // The export is in the audit chain beside the store, as the CLI's user.
    let chain = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(chain.lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "export", "{chain}");
    assert!(
        last["actor"].as_str().unwrap().starts_with("cli:"),
        "{chain}"
    );
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .starts_with("wrapped to escrow:"),
        "{chain}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("escrow.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("escrow.json")).unwrap()).unwrap();
    assert_eq!(record["instance"], "ccsdemo");
    assert_eq!(record["key_id"], 1);
    assert_eq!(record["padding"], "oaep-sha256");
    assert_eq!(record["plaintext"], "raw");
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(record["wrappedKey"].as_str().unwrap())
        .unwrap();
    assert_eq!(openssl_unwrap(&d.join("escrow.key"), &wrapped, d), secret);
    let kept = export(&["--out", "escrow.json"]);
    assert_eq!(
        kept.status.code(),
        Some(1),
        "an existing --out is never overwritten"
    );

    // Cloud Encryption's upload: one line of base64, the raw bytes wrapped the same way.
    let out = export(&["--format", "cloud-encryption"]);
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .unwrap();
    assert_eq!(openssl_unwrap(&d.join("escrow.key"), &wrapped, d), secret);
    assert!(
        !text(&out).contains(&hex::encode(&secret)),
        "the secret itself is never printed"
    );

    // Restore into an empty store, from the record alone.
    std::fs::remove_file(d.join("keys.toml")).unwrap();
    let restore = |record: &str, key: &str, extra: &[&str]| {
        keys(
            &[
                &[
                    "import",
                    "--from-escrow",
                    record,
                    "--escrow-key",
                    key,
                    "--create",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let wrong = restore("escrow.json", "other.key", &[]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong).contains("is not the private key of the escrow certificate"),
        "{}",
        text(&wrong)
    );
    let mismatch = restore("escrow.json", "escrow.key", &["--instance", "other"]);
    assert_eq!(mismatch.status.code(), Some(1));
    assert!(text(&mismatch).contains("not the record's instance"));
    let mut changed = record.clone();
    changed["kcv"] = "000000".into();
    std::fs::write(d.join("changed.json"), changed.to_string()).unwrap();
    let tampered = restore("changed.json", "escrow.key", &[]);
    assert_eq!(tampered.status.code(), Some(1));
    assert!(
        text(&tampered).contains("the record was changed"),
        "{}",
        text(&tampered)
    );
    assert!(
        !d.join("keys.toml").exists(),
        "a refused restore wrote nothing"
    );
    let restored = restore("escrow.json", "escrow.key", &[]);
    assert!(restored.status.success(), "{}", text(&restored));
    assert_eq!(
        hex::decode(secret_of(&d.join("keys.toml"), "ccsdemo")).unwrap(),
        secret
    );
}
