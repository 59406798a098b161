#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Records as a forger would make them, each with one thing wrong, beside honest ones.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::*;
use crate::chain::StateRecord;
use crate::httpsig::{params, sign, Algorithm, Message, Signing};
use time::OffsetDateTime;

const HOST: &str = "ccs.example.com:9443";
/// 2027-01-15T08:00:00Z, the records' time.
const AT: i64 = 1_800_000_000;

struct World {
    secrets: Vec<(String, Vec<u8>)>,
    signers: Signers,
}

fn world() -> World {
    let mut text = String::new();
    let mut secrets = Vec::new();
    for id in ["alice", "bob"] {
        let mut secret = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).unwrap();
        text.push_str(&format!(
            "[[signer]]\nkey_id = \"{id}\"\nsecret = \"{}\"\nalgorithm = \"hmac-sha256\"\nactions = [\"disable\", \"enable\", \"shutdown\", \"renew\"]\n",
            BASE64.encode(&secret)
        ));
        secrets.push((id.to_owned(), secret));
    }
    let signers = Signers::parse(Path::new("signers.toml"), &text).unwrap();
    World { secrets, signers }
}

impl World {
    fn rules(&self) -> Rules<'_> {
        Rules {
            signers: &self.signers,
            window: Window {
                approval_timeout: Duration::from_secs(3600),
                clock_skew: Duration::from_secs(60),
            },
            quorum: Quorum::default(),
            names: Some(vec![HOST.to_owned()]),
        }
    }

    /// `keyid`'s signed request, as the API keeps it.
    fn signed(
        &self,
        keyid: &str,
        authority: &str,
        path: &str,
        body: &str,
        nonce: &str,
    ) -> Evidence {
        let secret = &self.secrets.iter().find(|(id, _)| id == keyid).unwrap().1;
        let message = Message {
            method: "POST",
            authority,
            path_and_query: path,
            headers: &[],
            body: body.as_bytes(),
        };
        let signing = Signing {
            label: "sig1",
            keyid,
            algorithm: Algorithm::HmacSha256,
            secret,
            created: AT - 30,
            nonce,
        };
        let added = sign(&message, signing).unwrap();
        let all: Vec<(&str, &str)> = added
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let with = Message {
            headers: &all,
            ..message
        };
        Evidence::of(&params(&with).unwrap(), &with)
    }
}

fn state(disabled: bool, not_after: Option<&str>) -> Option<StateRecord> {
    Some(StateRecord {
        disabled,
        kcv: "abcdef".into(),
        lease: false,
        not_after: not_after.map(str::to_owned),
    })
}

fn record(seq: u64, actor: &str, action: &str, change: [Option<StateRecord>; 2]) -> Record {
    let [before, after] = change;
    Record {
        seq,
        time: crate::protocol::format_timestamp(OffsetDateTime::from_unix_timestamp(AT).unwrap()),
        actor: actor.into(),
        action: action.into(),
        instance: "ccsdemo".into(),
        key_id: 1,
        before,
        after,
        reason: String::new(),
        role: None,
        signatures: None,
        prev: String::new(),
        hash: String::new(),
    }
}

fn carrying(mut record: Record, evidence: &[Evidence]) -> Record {
    let list: Vec<String> = evidence.iter().map(Evidence::json).collect();
    record.signatures = Some(format!("[{}]", list.join(",")));
    record
}

fn problems(world: &World, records: &[Record]) -> Vec<String> {
    check(records, &world.rules(), 1).1
}

const DISABLE: &str = "/v1/keys/ccsdemo/1/disable";
const ENABLE: &str = "/v1/keys/ccsdemo/1/enable";

#[test]
fn honest_changes_are_proven() {
    let w = world();
    let disable = w.signed(
        "alice",
        HOST,
        DISABLE,
        r#"{"reason":"incident 7"}"#,
        "nonce-0000000001",
    );
    let mut first = carrying(
        record(
            1,
            "alice",
            "disable",
            [state(false, None), state(true, None)],
        ),
        &[disable],
    );
    first.reason = "incident 7".into();
    first.time = "2027-01-15T07:59:00.000Z".into();
    // A leading zero in the key id names the same key (the router reads it so).
    let a = w.signed(
        "alice",
        HOST,
        "/v1/keys/ccsdemo/01/enable",
        "{}",
        "nonce-0000000002",
    );
    let b = w.signed(
        "bob",
        HOST,
        ENABLE,
        r#"{"reason":"over"}"#,
        "nonce-0000000003",
    );
    let mut second = carrying(
        record(
            2,
            "alice+bob",
            "enable",
            [state(true, None), state(false, None)],
        ),
        &[a, b],
    );
    second.reason = "bob: over".into();
    let (proven, problems) = check(&[first, second], &w.rules(), 1);
    assert_eq!(problems, Vec::<String>::new());
    assert_eq!((proven.records, proven.signatures), (2, 3));
}

#[test]
fn a_quorum_change_needs_its_quorum_of_signatures() {
    // An operator's SQL finishing an enable with the one pending vote it could read.
    let w = world();
    let a = w.signed("alice", HOST, ENABLE, "{}", "nonce-0000000004");
    let r = carrying(
        record(
            1,
            "alice",
            "enable",
            [state(true, None), state(false, None)],
        ),
        &[a],
    );
    let found = problems(&w, &[r]);
    assert!(
        found.iter().any(|p| p.contains("needs 2 distinct signers")),
        "{found:?}"
    );
}

#[test]
fn the_actor_is_the_signers_each_once() {
    let w = world();
    let a = w.signed("alice", HOST, DISABLE, "{}", "nonce-0000000005");
    let r = carrying(
        record(
            1,
            "alice+alice",
            "disable",
            [state(false, None), state(true, None)],
        ),
        &[a],
    );
    let found = problems(&w, &[r]);
    assert!(found.iter().any(|p| p.contains("each once")), "{found:?}");
    // Unsigned records whose actor names a signer among other parts.
    for actor in ["alice+", "cli:root+alice", "alice+Bob!", " Alice"] {
        let r = record(1, actor, "disable", [state(false, None), state(true, None)]);
        let found = problems(&w, &[r]);
        assert!(
            found.iter().any(|p| p.contains("carries no signatures")),
            "{actor:?}: {found:?}"
        );
    }
    let r = record(
        1,
        "cli:root",
        "disable",
        [state(false, None), state(true, None)],
    );
    assert!(problems(&w, &[r]).is_empty());
}

#[test]
fn a_signature_for_another_server_or_a_shifted_path_proves_nothing() {
    let w = world();
    let staging = w.signed(
        "alice",
        "staging.example.com:9443",
        DISABLE,
        "{}",
        "nonce-0000000006",
    );
    let r = carrying(
        record(
            1,
            "alice",
            "disable",
            [state(false, None), state(true, None)],
        ),
        &[staging],
    );
    let found = problems(&w, &[r]);
    assert!(
        found.iter().any(|p| p.contains("another server")),
        "{found:?}"
    );
    // The signed target https://HOST/v1/keys/ccsdemo/1/disable?x=/v1/… read with the path
    // moved into the authority: the HMAC holds, the authority is not a host.
    let signed = w.signed(
        "alice",
        HOST,
        "/v1/keys/ccsdemo/1/disable?x=/v1/keys/ccsdemo/1/enable",
        "{}",
        "nonce-0000000007",
    );
    let mut shifted = signed.clone();
    shifted.authority = format!("{HOST}/v1/keys/ccsdemo/1/disable?x=");
    shifted.path = ENABLE.into();
    let b = w.signed("bob", HOST, ENABLE, "{}", "nonce-0000000008");
    let r = carrying(
        record(
            1,
            "alice+bob",
            "enable",
            [state(true, None), state(false, None)],
        ),
        &[shifted, b],
    );
    let found = problems(&w, &[r]);
    assert!(
        found.iter().any(|p| p.contains("not a host and port")),
        "{found:?}"
    );
}

#[test]
fn the_signed_body_must_give_the_recorded_change() {
    let w = world();
    let renew = w.signed(
        "alice",
        HOST,
        "/v1/keys/ccsdemo/1/renew",
        r#"{"until":"2027-02-01T00:00:00Z"}"#,
        "nonce-0000000009",
    );
    let lease = |t: &str| {
        let mut s = state(false, Some(t));
        s.as_mut().unwrap().lease = true;
        s
    };
    let honest = carrying(
        record(
            1,
            "alice",
            "renew",
            [
                lease("2027-01-20T00:00:00.000Z"),
                lease("2027-02-01T00:00:00.000Z"),
            ],
        ),
        std::slice::from_ref(&renew),
    );
    assert_eq!(problems(&w, &[honest]), Vec::<String>::new());
    let forged = carrying(
        record(
            1,
            "alice",
            "renew",
            [
                lease("2027-01-20T00:00:00.000Z"),
                lease("2099-01-01T00:00:00.000Z"),
            ],
        ),
        &[renew],
    );
    let found = problems(&w, &[forged]);
    assert!(
        found
            .iter()
            .any(|p| p.contains("state after is not what the signed renew gives")),
        "{found:?}"
    );
    // A shutdown without `at` is the moment of the request.
    let shutdown = w.signed(
        "alice",
        HOST,
        "/v1/keys/ccsdemo/1/shutdown",
        "{}",
        "nonce-0000000010",
    );
    let r = carrying(
        record(
            1,
            "alice",
            "shutdown",
            [
                state(false, None),
                state(false, Some("2027-01-15T07:59:50.000Z")),
            ],
        ),
        std::slice::from_ref(&shutdown),
    );
    assert_eq!(problems(&w, &[r]), Vec::<String>::new());
    let r = carrying(
        record(
            1,
            "alice",
            "shutdown",
            [
                state(false, None),
                state(false, Some("2099-01-01T00:00:00.000Z")),
            ],
        ),
        &[shutdown],
    );
    assert!(!problems(&w, &[r]).is_empty());
}

#[test]
fn an_approval_cast_before_the_keys_previous_change_was_void() {
    let w = world();
    // Alice's enable vote of 07:59:30 was voided by the CLI's disable at 07:59:40; an operator
    // copies it into a new approval, which bob's vote completes.
    let a = w.signed("alice", HOST, ENABLE, "{}", "nonce-0000000011");
    let b = w.signed("bob", HOST, ENABLE, "{}", "nonce-0000000012");
    let mut cli = record(
        1,
        "cli:root",
        "disable",
        [state(false, None), state(true, None)],
    );
    cli.time = "2027-01-15T07:59:40.000Z".into();
    let enable = carrying(
        record(
            2,
            "alice+bob",
            "enable",
            [state(true, None), state(false, None)],
        ),
        &[a, b],
    );
    // Without the CLI's change in between the two votes prove it (the clock skew lets a
    // change seconds before a vote pass; 10 s before the vote is inside it)...
    let mut rules = w.rules();
    assert!(check(&[cli.clone(), enable.clone()], &rules, 1)
        .1
        .is_empty());
    // ...with a skew of 1 s it is seen.
    rules.window.clock_skew = Duration::from_secs(1);
    let found = check(&[cli, enable], &rules, 1).1;
    assert!(
        found.iter().any(|p| p.contains("voided its approval")),
        "{found:?}"
    );
}

#[test]
fn a_signature_must_cover_the_body_of_a_post() {
    let w = world();
    let mut e = w.signed("alice", HOST, DISABLE, "", "nonce-0000000013");
    // Signed without a body (no content-digest covered), then a body added.
    e.body = BASE64.encode(br#"{"reason":"x"}"#);
    let r = carrying(
        record(
            1,
            "alice",
            "disable",
            [state(false, None), state(true, None)],
        ),
        &[e],
    );
    let found = problems(&w, &[r]);
    assert!(
        found.iter().any(|p| p.contains("content-digest")),
        "{found:?}"
    );
}
