//! The audit chain (contract §10): one record per key-state change, each holding the hash of
//! the one before, so that a record changed, removed or reordered breaks the chain from there.
//!
//! `hash` = hex SHA-256 of `prev` (64 hex digits; 64 zeros for the first record) followed by
//! the record's canonical JSON: the fields below except `prev` and `hash`, keys sorted, no
//! spaces, strings escaped as JSON requires and nothing more (UTF-8 as is), states as
//! `{"disabled":…,"kcv":…,"not_after":…}` or `null`, times as `YYYY-MM-DDTHH:MM:SS.ffffffZ`;
//! `role` only where the record has one (a fleet's records since schema version 3), and
//! `signatures` only where the record has them (an API change's signed requests, a JSON list
//! of `httpsig::Evidence` held as one string, since schema version 4 in a fleet).
//! The fleet's database trigger writes exactly these bytes (`fleet/schema.sql`), and
//! [`verify`] recomputes them here. A single node keeps the chain in `audit.jsonl` beside its
//! key store ([`AuditFile`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::keystore::{parse_time, KeyState};

mod file;

pub use file::{AuditFile, ChainError, Locked};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A key's state as a record shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    pub disabled: bool,
    pub kcv: String,
    /// Shown only when true: `not_after` is a lease (records before it stay as they were).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lease: bool,
    pub not_after: Option<String>,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub time: String,
    /// `cli:<user>`, a signer's key id, `file`, or `db:<role>` for a change made in SQL.
    pub actor: String,
    pub action: String,
    pub instance: String,
    pub key_id: u64,
    pub before: Option<StateRecord>,
    pub after: Option<StateRecord>,
    pub reason: String,
    /// In a fleet, the database login that made the change (`session_user`): what the database
    /// vouches for, beside the `actor` the client claims. Absent from a single node's records
    /// and from those written before schema version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A change through the signed API: its approvers' signed requests (`httpsig::Evidence`,
    /// a JSON list kept as the string it was hashed as), which `audit verify --signers`
    /// checks again. Absent from every other record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<String>,
    pub prev: String,
    pub hash: String,
}

impl StateRecord {
    /// `state` as a record shows it.
    pub fn of(state: &KeyState) -> Self {
        Self {
            disabled: state.disabled,
            kcv: state.kcv.to_string(),
            lease: state.lease && state.not_after.is_some(),
            not_after: state.not_after.map(time_text),
        }
    }
}

/// A moment as records write it: UTC, microseconds, `Z` (the database's `ccs_time`).
pub fn time_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// One change of a key's state, before it is numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub actor: String,
    pub action: String,
    pub instance: String,
    pub key_id: u64,
    pub before: Option<StateRecord>,
    pub after: Option<StateRecord>,
    pub reason: String,
    /// The approvers' signed requests (see [`Record::signatures`]).
    pub signatures: Option<String>,
}

/// Keys' states as records show them, by (instance, key id).
pub type States = BTreeMap<(String, u64), StateRecord>;

/// `keys` as records show them.
pub fn states<'a>(keys: impl IntoIterator<Item = &'a KeyState>) -> States {
    keys.into_iter()
        .map(|k| {
            (
                (k.instance.as_str().to_owned(), k.key_id),
                StateRecord::of(k),
            )
        })
        .collect()
}

/// The changes from `old` to `new`, named as the database trigger names them: `add`, `remove`,
/// `replace` (another secret), `disable`, `enable`, `restore` (no `not_after` any more),
/// `shutdown` (`not_after` passed), `renew` (a later one).
pub fn changes(
    old: &States,
    new: &States,
    actor: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Vec<Change> {
    let ids: std::collections::BTreeSet<&(String, u64)> = old.keys().chain(new.keys()).collect();
    ids.into_iter()
        .filter_map(|id| {
            let (before, after) = (old.get(id), new.get(id));
            let action = match (before, after) {
                (b, a) if b == a => return None,
                (None, _) => "add",
                (_, None) => "remove",
                (Some(b), Some(a)) if b.kcv != a.kcv => "replace",
                (Some(b), Some(a)) if a.disabled && !b.disabled => "disable",
                (Some(b), Some(a)) if b.disabled && !a.disabled => "enable",
                (Some(_), Some(a)) => match a.not_after.as_deref().map(parse_time) {
                    None => "restore",
                    Some(Ok(t)) if t <= now || !a.lease => "shutdown",
                    Some(_) => "renew",
                },
            };
            Some(Change {
                actor: actor.to_owned(),
                action: action.to_owned(),
                instance: id.0.clone(),
                key_id: id.1,
                before: before.cloned(),
                after: after.cloned(),
                reason: reason.to_owned(),
                signatures: None,
            })
        })
        .collect()
}

/// The hashed fields, in canonical (alphabetical) order.
#[derive(Serialize)]
struct Canonical<'a> {
    action: &'a str,
    actor: &'a str,
    after: &'a Option<StateRecord>,
    before: &'a Option<StateRecord>,
    instance: &'a str,
    key_id: u64,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: &'a Option<String>,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    signatures: &'a Option<String>,
    time: &'a str,
}

impl Record {
    /// `change` numbered `seq` at `time`, chained after `prev`.
    pub fn chain(change: &Change, seq: u64, time: OffsetDateTime, prev: &str) -> Self {
        let mut record = Self {
            seq,
            time: time_text(time),
            actor: change.actor.clone(),
            action: change.action.clone(),
            instance: change.instance.clone(),
            key_id: change.key_id,
            before: change.before.clone(),
            after: change.after.clone(),
            reason: change.reason.clone(),
            role: None,
            signatures: change.signatures.clone(),
            prev: prev.to_owned(),
            hash: String::new(),
        };
        record.hash = record.expected_hash(prev);
        record
    }

    /// The canonical JSON of the hashed fields.
    pub fn canonical(&self) -> String {
        let canonical = Canonical {
            action: &self.action,
            actor: &self.actor,
            after: &self.after,
            before: &self.before,
            instance: &self.instance,
            key_id: self.key_id,
            reason: &self.reason,
            role: &self.role,
            seq: self.seq,
            signatures: &self.signatures,
            time: &self.time,
        };
        // Serialising strings, numbers and booleans cannot fail.
        serde_json::to_string(&canonical).unwrap_or_default()
    }

    /// The hash this record should carry after `prev`.
    pub fn expected_hash(&self, prev: &str) -> String {
        let mut input = Vec::with_capacity(prev.len() + 256);
        input.extend_from_slice(prev.as_bytes());
        input.extend_from_slice(self.canonical().as_bytes());
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &input,
        ))
    }
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("record seq {seq} was changed: its hash does not match its contents")]
    Changed { seq: u64 },
    #[error("the record before seq {seq} was removed or replaced: its prev does not match the hash of the record before it")]
    Unlinked { seq: u64 },
    #[error("records are missing or reordered at seq {seq}: expected seq {expected}")]
    Gap { seq: u64, expected: u64 },
}

/// Whether `records` (a verified chain) still holds the head `SEQ:HASH` kept outside it: a
/// chain cannot prove its own tail, so a head written down elsewhere anchors it (contract
/// §10). Says what happened when it does not: truncated, or rewritten.
pub fn holds(records: &[Record], head: &str) -> Result<(), String> {
    let (seq, hash) = head
        .split_once(':')
        .and_then(|(s, h)| Some((s.parse::<u64>().ok()?, h)))
        .filter(|(_, h)| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            format!(
                "--head {head:?} is not SEQ:HASH (a record's seq, a colon and its 64 hex digits)"
            )
        })?;
    let last = records.last().map_or(0, |r| r.seq);
    match records.iter().find(|r| r.seq == seq) {
        None => Err(format!(
            "it has no record seq {seq} any more (it ends at seq {last}): records were removed from its end"
        )),
        Some(r) if !r.hash.eq_ignore_ascii_case(hash) => Err(format!(
            "record seq {seq} has hash {} now, not {hash}: the chain was rewritten from there or before",
            r.hash
        )),
        Some(_) => Ok(()),
    }
}

/// Checks `records`, in the order stored, from the first: each in sequence, linked to the one
/// before, with the hash of its contents. Names the first record that breaks it.
pub fn verify(records: &[Record]) -> Result<(), Broken> {
    let mut prev = GENESIS.to_owned();
    for (expected, record) in (1..).zip(records) {
        if record.seq != expected {
            return Err(Broken::Gap {
                seq: record.seq,
                expected,
            });
        }
        if record.prev != prev {
            return Err(Broken::Unlinked { seq: record.seq });
        }
        if record.expected_hash(&prev) != record.hash {
            return Err(Broken::Changed { seq: record.seq });
        }
        prev.clone_from(&record.hash);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn chain(n: u64) -> Vec<Record> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut r = Record {
                    seq,
                    time: "2026-11-26T04:00:00.000000Z".into(),
                    actor: "cli:alice".into(),
                    action: "disable".into(),
                    instance: "ccsdemo".into(),
                    key_id: 1,
                    before: None,
                    after: Some(StateRecord {
                        disabled: true,
                        kcv: "ABC123".into(),
                        lease: false,
                        not_after: None,
                    }),
                    reason: format!("incident \"{seq}\"\n\ttab é"),
                    role: None,
                    signatures: None,
                    prev: prev.clone(),
                    hash: String::new(),
                };
                r.hash = r.expected_hash(&prev);
                prev.clone_from(&r.hash);
                r
            })
            .collect()
    }

    #[test]
    fn canonical_json_is_sorted_and_compact() {
        let r = &chain(1)[0];
        assert_eq!(
            r.canonical(),
            r#"{"action":"disable","actor":"cli:alice","after":{"disabled":true,"kcv":"ABC123","not_after":null},"before":null,"instance":"ccsdemo","key_id":1,"reason":"incident \"1\"\n\ttab é","seq":1,"time":"2026-11-26T04:00:00.000000Z"}"#
        );
    }

    #[test]
    fn names_the_first_changed_removed_or_reordered_record() {
        let good = chain(5);
        assert_eq!(verify(&good), Ok(()));

        let mut changed = good.clone();
        changed[2].reason = "nothing happened".into();
        assert_eq!(verify(&changed), Err(Broken::Changed { seq: 3 }));

        let mut removed = good.clone();
        removed.remove(1);
        assert_eq!(
            verify(&removed),
            Err(Broken::Gap {
                seq: 3,
                expected: 2
            })
        );

        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert_eq!(
            verify(&reordered),
            Err(Broken::Gap {
                seq: 3,
                expected: 2
            })
        );

        // Renumbered after a removal: the link to the record before gives it away.
        let mut renumbered = good.clone();
        renumbered.remove(1);
        for r in &mut renumbered[1..] {
            r.seq -= 1;
        }
        assert_eq!(verify(&renumbered), Err(Broken::Unlinked { seq: 2 }));

        let mut rehashed = good;
        rehashed[3].actor = "cli:mallory".into();
        rehashed[3].hash = rehashed[3].expected_hash(&rehashed[3].prev.clone());
        assert_eq!(verify(&rehashed), Err(Broken::Unlinked { seq: 5 }));
    }
}
