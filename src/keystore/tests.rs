//! Unit tables for `keystore`.

use std::path::Path;

use super::*;
use crate::keystore::format::shown_names;
use crate::permissions::Permissions;

const A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const B: &str = "FFEEDDCCBBAA99887766554433221100FFEEDDCCBBAA99887766554433221100";

fn parse(text: &str) -> Result<KeyStore, KeyStoreError> {
    KeySource::File.parse(Path::new("keys.toml"), text)
}

#[test]
fn reads_every_field() {
    let store = parse(&format!(
        r#"
        # comment
        [[key]]
        instance = "ccsdemo"
        key_id = 1
        secret = "{A}"

        [[key]]
        instance = "ccsdemo"
        key_id = 2
        secret = "{B}"
        not_after = "2027-01-01T00:00:00Z"
        disabled = true

        [[key]]
        instance = "other"
        key_id = 1
        secret = "{A}"
        not_after = 2027-01-01T01:00:00+01:00
        "#
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let list = store.list();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].key_id, 1);
    assert!(!list[0].disabled && list[0].not_after.is_none());
    assert!(list[1].disabled);
    assert_eq!(
        list[1].not_after.map(|t| t.unix_timestamp()),
        Some(1_798_761_600)
    );
    assert_eq!(list[2].not_after, list[1].not_after);
    assert_eq!(list[0].kcv, list[2].kcv);
    assert!(parse("").unwrap_or_else(|e| panic!("{e}")).is_empty());
}

#[test]
fn errors_name_file_entry_and_field_and_never_the_secret() {
    let ok = format!("instance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{A}\"");
    let rows: Vec<(String, &str)> = vec![
        (
            format!("[[key]]\n{ok}\n[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{B}\""),
            "entry 2 (instance \"ccsdemo\", key_id 1): field `key_id`: duplicate",
        ),
        (
            format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{}\"", &A[..40]),
            "entry 1 (instance \"ccsdemo\", key_id 1): field `secret`: must be 64 hexadecimal characters (32 bytes); found 40",
        ),
        (
            format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{}zz\"", &A[..62]),
            "field `secret`: must be 64 hexadecimal characters (32 bytes); found a character",
        ),
        (
            "[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = 5".into(),
            "field `secret`: must be a string",
        ),
        (
            "[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1".into(),
            "field `secret`: missing",
        ),
        (
            format!("[[key]]\ninstance = \"ccs.demo\"\nkey_id = 1\nsecret = \"{A}\""),
            "entry 1: field `instance`: the instance name may hold only",
        ),
        (
            format!("[[key]]\ninstance = \"\"\nkey_id = 1\nsecret = \"{A}\""),
            "entry 1: field `instance`: the instance name must be 1 to 63",
        ),
        (
            format!("[[key]]\nkey_id = 1\nsecret = \"{A}\""),
            "entry 1: field `instance`: missing",
        ),
        (
            format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = -1\nsecret = \"{A}\""),
            "field `key_id`: must not be negative",
        ),
        (
            format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = \"1\"\nsecret = \"{A}\""),
            "field `key_id`: must be an integer",
        ),
        (
            format!("[[key]]\n{ok}\nnot_after = \"2027-13-01T00:00:00Z\""),
            "entry 1 (instance \"ccsdemo\", key_id 1): field `not_after`: is not an RFC 3339 time",
        ),
        (
            format!("[[key]]\n{ok}\nnot_after = \"2027-01-01\""),
            "field `not_after`",
        ),
        (
            format!("[[key]]\n{ok}\nnot_after = 2027-01-01T00:00:00"),
            "field `not_after`",
        ),
        (
            format!("[[key]]\n{ok}\ndisabled = \"yes\""),
            "field `disabled`: must be true or false",
        ),
        (
            format!("[[key]]\n{ok}\nenabled = true"),
            "field `key`: unknown field `enabled`",
        ),
        (format!("[[keys]]\n{ok}"), "unknown top-level item `keys`"),
        // A secret pasted into the wrong field, or as a field name, is not printed back.
        (
            format!("[[key]]\n{ok}\n{A} = 1"),
            "field `key`: unknown field (not shown: not a plain word)",
        ),
        (format!("{B} = 1\n[[key]]\n{ok}"), "unknown top-level item (not shown"),
        (
            format!("[[key]]\ninstance = \"{A}\"\nkey_id = 1\nsecret = \"{B}\""),
            "entry 1: field `instance`: the instance name must be 1 to 63 characters long (found 64)",
        ),
        (
            format!("[[key]]\n{ok}\nnot_after = \"{B}\""),
            "field `not_after`: is not an RFC 3339 time",
        ),
        (format!("[key]\n{ok}"), "`key` must be an array of tables"),
        (
            format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{A}"),
            "keys.toml: line 4: not valid TOML",
        ),
    ];
    for (text, want) in rows {
        let err = parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("key store keys.toml: "), "{err}");
        assert!(err.contains(want), "want {want:?} in {err:?}");
        for secret in [A, B, &A[..40], &A[..20], &B[..20]] {
            assert!(!err.contains(secret), "secret leaked in {err:?}");
        }
    }
}

#[cfg(unix)]
#[test]
fn permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("keys.toml");
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    let rows = [
        (0o600, Permissions::Private, false, true),
        (0o400, Permissions::Private, false, true),
        (0o640, Permissions::GroupReadable(0o640), true, true),
        (0o660, Permissions::Open(0o660), true, false),
        (0o604, Permissions::Open(0o604), true, false),
        (0o644, Permissions::Open(0o644), true, false),
    ];
    for (mode, want, warns, ok_by_default) in rows {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
        let got = Permissions::of(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, want, "{mode:o}");
        let verdict = check_permissions(&path, false);
        assert_eq!(verdict.is_ok(), ok_by_default, "{mode:o}");
        let allowed = check_permissions(&path, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(allowed.is_some(), warns, "{mode:o}");
    }
}

#[test]
fn owner_and_directory_are_judged_too() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap_or_else(|e| panic!("{e}"));
    let path = store.join("keys.toml");
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
    let set_dir = |mode: u32| {
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let judged = || Permissions::of(&path).unwrap_or_else(|e| panic!("{e}"));
    set_dir(0o777);
    let open_dir = judged();
    assert!(
        matches!(&open_dir, Permissions::Exposed(why) if why.contains("writable by others")),
        "{open_dir:?}"
    );
    assert!(check_permissions(&path, false).is_err());
    assert!(matches!(check_permissions(&path, true), Ok(Some(_))));
    set_dir(0o1777);
    assert_eq!(
        judged(),
        Permissions::Private,
        "the sticky bit protects the file"
    );
    set_dir(0o700);
    assert_eq!(judged(), Permissions::Private);
    // Owner and group need root to set up; said loudly when not.
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        eprintln!("SKIPPED: the foreign owner and group rows need root (chown)");
        return;
    }
    set_dir(0o770);
    chown(&store, None, Some(54_321)).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(judged(), Permissions::Exposed(why) if why.contains("group 54321")),
        "a directory a foreign group can write"
    );
    set_dir(0o700);
    chown(&path, Some(54_321), None).unwrap_or_else(|e| panic!("{e}"));
    let foreign = judged();
    assert!(
        matches!(&foreign, Permissions::Exposed(why) if why.contains("owned by uid 54321")),
        "{foreign:?}"
    );
}

#[test]
fn toml_messages_show_only_plain_names() {
    // The fuzzer's find: toml names the table of a duplicate key, and the table header was a
    // secret.
    let text = format!("[[key{A}]]\nsecret = \"{A}\"\nsecret = \"{A}\"\n");
    let error = parse(&text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        !error.contains(&A[..16]),
        "the table header's secret was quoted"
    );
    assert!(
        error.contains("duplicate key `secret` in table (not shown: not a plain word)"),
        "{error}"
    );
    assert_eq!(shown_names("a `b` c `d"), "a `b` c `d");
    assert_eq!(shown_names("no names"), "no names");
}

#[test]
fn a_token_backed_file_holds_kcvs_not_secrets() {
    let path = Path::new("keys.toml");
    let good = "[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nkcv = \"dc95c0\"\ndisabled = true\n";
    let entries = parse_entries(path, good, SecretsIn::Token).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entries.len(), 1);
    assert!(entries[0].secret.is_none());
    assert_eq!(entries[0].state.kcv.to_string(), "DC95C0");
    assert!(entries[0].state.disabled);

    let secret = "ab".repeat(32);
    let rows = [
        (
            format!("{good}secret = \"{secret}\"\n"),
            "entry 1 (instance \"ccsdemo\", key_id 1): field `secret`: not allowed",
        ),
        (
            good.replace("kcv = \"dc95c0\"\n", ""),
            "field `kcv`: missing",
        ),
        (
            good.replace("\"dc95c0\"", "\"dc95c\""),
            "field `kcv`: must be the 6 hex digits",
        ),
        (
            good.replace("\"dc95c0\"", "7"),
            "field `kcv`: must be a string of 6 hex digits, not integer",
        ),
    ];
    for (text, want) in rows {
        let error = parse_entries(path, &text, SecretsIn::Token)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!error.contains(&secret), "the secret was quoted");
        assert!(error.contains(want), "{want:?} not in {error:?}");
    }
    // A file-backed store knows no `kcv` field: it computes the KCV from the secret.
    let error = parse(&good.replace(
        "kcv = \"dc95c0\"",
        &format!("secret = \"{secret}\"\nkcv = \"DC95C0\""),
    ))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(error.contains("unknown field `kcv`"), "{error}");
}
