#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="; // 34 bytes

fn parse(text: &str) -> Result<Signers, SignersError> {
    Signers::parse(Path::new("/etc/ccs/signers.toml"), text)
}

#[test]
fn reads_signers_and_refuses_the_unusable_ones() {
    let signers = parse(&format!(
        "[[signer]]\nkey_id = \"soc-oncall\"\nsecret = \"{SECRET}\"\nalgorithm = \"hmac-sha256\"\nactions = [\"status\", \"disable\", \"shutdown\"]\n\n\
         [[signer]]\nkey_id = \"old\"\nsecret = \"{SECRET}\"\nalgorithm = \"hmac-sha512\"\nactions = [\"status\"]\nexpires = \"2020-01-01T00:00:00Z\"\n\n\
         [[signer]]\nkey_id = \"off\"\nsecret = \"{SECRET}\"\nalgorithm = \"hmac-sha384\"\nactions = [\"enable\"]\nactive = false\n"
    ))
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let soc = signers.signer("soc-oncall", now).unwrap();
    assert_eq!(soc.algorithm, Algorithm::HmacSha256);
    assert!(soc.actions.contains(&Action::Disable) && !soc.actions.contains(&Action::Enable));
    assert_eq!(soc.secret().len(), 34);
    assert!(!format!("{soc:?}").contains(SECRET));
    assert!(matches!(
        signers.signer("old", now),
        Err(Refusal::Expired(..))
    ));
    assert!(matches!(
        signers.signer("off", now),
        Err(Refusal::Inactive(_))
    ));
    assert!(matches!(
        signers.signer("nobody", now),
        Err(Refusal::UnknownKey(_))
    ));
}

#[test]
fn errors_name_the_entry_and_field_and_never_the_secret() {
    let entry = |fields: &str| format!("[[signer]]\n{fields}\n");
    let ok = format!("key_id = \"a\"\nsecret = \"{SECRET}\"\nalgorithm = \"hmac-sha256\"\nactions = [\"status\"]");
    let rows = [
        (ok.replace("hmac-sha256", "hmac-md5"), "field `algorithm`"),
        (ok.replace("\"status\"", "\"delete\""), "field `actions`"),
        (
            ok.replace("[\"status\"]", "[]"),
            "field `actions`: is empty",
        ),
        (ok.replace(SECRET, "c2hvcnQ="), "field `secret`: is 5 bytes"),
        (
            ok.replace(SECRET, "not base64!"),
            "field `secret`: is not base64",
        ),
        (ok.replace("\"a\"", "\"a b\""), "field `key_id`"),
        (format!("{ok}\nexpires = \"soon\""), "field `expires`"),
        (
            format!("{ok}\nrole = \"admin\""),
            "field `signer`: unknown field `role`",
        ),
    ];
    for (fields, expected) in rows {
        let error = parse(&entry(&fields)).err().unwrap().to_string();
        assert!(
            error.contains("signers /etc/ccs/signers.toml: entry 1"),
            "{error}"
        );
        assert!(error.contains(expected), "{fields}\n→ {error}");
        assert!(
            !error.contains(SECRET) && !error.contains("not base64!\""),
            "{error}"
        );
    }
    let twice = format!("{}{}", entry(&ok), entry(&ok));
    assert!(parse(&twice)
        .err()
        .unwrap()
        .to_string()
        .contains("entry 2 (key_id \"a\"): field `key_id`: duplicate"));
}
