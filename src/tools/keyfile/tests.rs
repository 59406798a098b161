//! Unit tables for key-store editing.

use super::*;

fn name(s: &str) -> InstanceName {
    InstanceName::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[cfg(unix)]
fn an_edit_keeps_the_owner_group_and_group_read_of_the_store() {
    use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        eprintln!("SKIPPED an_edit_keeps_the_owner...: changing a file's owner needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("keys.toml");
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    chown(&path, Some(4242), Some(4343)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut file = KeyFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let secret = Secret::generate().unwrap_or_else(|e| panic!("{e}"));
    file.add(&name("ccsdemo"), 1, &secret, false)
        .unwrap_or_else(|e| panic!("{e}"));
    file.save().unwrap_or_else(|e| panic!("{e}"));
    let after = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((after.uid(), after.gid()), (4242, 4343));
    assert_eq!(after.mode() & 0o777, 0o640);
    // A new store is the editor's, mode 600.
    let fresh = dir.path().join("new.toml");
    let mut file = KeyFile::open(&fresh).unwrap_or_else(|e| panic!("{e}"));
    file.add(&name("ccsdemo"), 1, &secret, false)
        .unwrap_or_else(|e| panic!("{e}"));
    file.save().unwrap_or_else(|e| panic!("{e}"));
    let made = std::fs::metadata(&fresh).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((made.uid(), made.mode() & 0o777), (0, 0o600));
}

#[test]
fn edits_keep_comments_and_validate() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("keys.toml");
    std::fs::write(&path, "# keep me\n\n[[key]]\n# and me\ninstance = \"a\"\nkey_id = 1\nsecret = \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut file = KeyFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let secret = Secret::generate().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        file.add(&name("a"), 1, &secret, false).is_err(),
        "no silent replacement"
    );
    assert!(file
        .add(&name("b"), 2, &secret, false)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    file.set_disabled(&name("a"), 1, true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(file.set_disabled(&name("a"), 9, true).is_err());
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or_else(|e| panic!("{e}"));
    let shut = file
        .apply(&name("b"), None, crate::switch::Action::Shutdown(at), at)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shut.iter().map(|k| k.key_id).collect::<Vec<_>>(), [2]);
    // One rule for every source: a later shutdown never moves an earlier one back, and a
    // restore to a past moment is refused, nothing changed.
    let later = at + time::Duration::hours(1);
    file.apply(
        &name("b"),
        None,
        crate::switch::Action::Shutdown(later),
        later,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let refused = file
        .apply(
            &name("b"),
            Some(2),
            crate::switch::Action::Restore(Some(at)),
            later,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(refused.contains("not a restore"), "{refused}");
    let store = file.save().unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("# keep me") && text.contains("# and me"),
        "{text}"
    );
    let states = store;
    assert!(states[0].disabled);
    assert_eq!(states[1].kcv, secret.kcv());
    assert_eq!(states[1].not_after, Some(at));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
    }
    // Replacing with --force returns the old KCV and clears the kill switches.
    let mut file = KeyFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let old = file
        .add(&name("a"), 1, &secret, true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(old.is_some() && old != Some(secret.kcv()));
    let store = file.save().unwrap_or_else(|e| panic!("{e}"));
    assert!(!store[0].disabled);
}

#[test]
fn a_broken_store_is_not_edited() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("keys.toml");
    std::fs::write(&path, "[[key]]\ninstance = \"a\"\n").unwrap_or_else(|e| panic!("{e}"));
    let err = KeyFile::open(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("field `key_id`: missing"), "{err}");
    let fresh = KeyFile::open(&dir.path().join("new.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fresh.path(), dir.path().join("new.toml"));
}
