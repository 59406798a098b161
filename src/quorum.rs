//! Quorum for the admin API's changes (contract §9): a change that needs more than one signer
//! waits as a pending approval until enough distinct signers asked for the same change of the
//! same key, or it expires. The same signer counts once. This is the rule and the single-node
//! book; a fleet keeps its book in the database (`fleet::approvals`) by the same rule.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::protocol::format_timestamp;

/// Pending approvals kept at most (a single node): only signers can add one.
pub const MAX_PENDING: usize = 1000;

/// One signer asking for one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ballot {
    pub instance: String,
    pub key_id: u64,
    /// The API's action: `disable`, `enable`, `shutdown`, `renew`.
    pub action: &'static str,
    /// What the change sets (`at`, `until`), RFC 3339, or empty: signers agree on it too.
    pub target: String,
    pub signer: String,
    pub reason: String,
    /// The key's version when the ballot is cast (set by the backend: the fleet row's
    /// revision, a single node's last audit record of the key and its state): an approval
    /// counts only for the version it was cast on, and any change to the key voids it.
    pub state: String,
    /// The signers who may take this action now (active, unexpired, allowed it): an earlier
    /// approver no longer among them no longer counts.
    pub electorate: Vec<String>,
    /// The signed request as evidence (`httpsig::Evidence`, its JSON), which the audit record
    /// of the change carries (contract §10); empty when there is none.
    pub evidence: String,
}

/// A change waiting for more signers, as `GET /v1/approvals` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub id: String,
    pub instance: String,
    pub key_id: u64,
    pub action: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    pub approvers: Vec<String>,
    pub reasons: Vec<String>,
    pub required: u32,
    pub created: String,
    pub expires: String,
    /// The key's version it was cast on (see [`Ballot::state`]).
    #[serde(skip)]
    pub state: String,
    /// Each approver's signed request (see [`Ballot::evidence`]), beside `approvers`.
    #[serde(skip)]
    pub evidence: Vec<String>,
}

/// Where a ballot left its change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// Needs more signers.
    Pending(Pending),
    /// Enough distinct signers: make the change, in their order.
    Reached {
        approvers: Vec<String>,
        reasons: Vec<String>,
        /// Each approver's signed request, beside `approvers`.
        evidence: Vec<String>,
    },
}

impl Vote {
    /// The audit chain's actor for a reached change: the signers' key ids joined by `+` (key
    /// ids cannot hold it).
    pub fn actor(approvers: &[String]) -> String {
        approvers.join("+")
    }

    /// The audit chain's `signatures` for a reached change: the approvers' signed requests as
    /// one JSON list, or none when no approver has one.
    pub fn signatures(evidence: &[String]) -> Option<String> {
        let kept: Vec<&str> = evidence
            .iter()
            .map(String::as_str)
            .filter(|e| !e.is_empty())
            .collect();
        (!kept.is_empty()).then(|| format!("[{}]", kept.join(",")))
    }

    /// The reached vote of one signer alone.
    pub fn alone(ballot: &Ballot) -> Self {
        Vote::Reached {
            approvers: vec![ballot.signer.clone()],
            reasons: vec![ballot.reason.clone()],
            evidence: vec![ballot.evidence.clone()],
        }
    }

    /// The audit chain's reason: one signer's own, or each signer's prefixed by its key id.
    pub fn reason(approvers: &[String], reasons: &[String]) -> String {
        match (approvers, reasons) {
            ([_], [reason]) => reason.clone(),
            _ => approvers
                .iter()
                .zip(reasons)
                .filter(|(_, why)| !why.is_empty())
                .map(|(who, why)| format!("{who}: {why}"))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// A new approval id: 128 random bits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // A CSPRNG failure leaves zeros: ids are names, not secrets, and a clash is refused by the
    // book (the same id is never handed to two changes at once).
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    format!("apr_{}", hex::encode(bytes))
}

/// Counts `ballot` in `pending` (its change's approval, cast on the same key version): the
/// same signer once, and an earlier approver only while it is still in the ballot's
/// electorate (contract §9: an approval counts only while it is still true). The quorum is
/// the larger of the approval's own and `required`: a replica configured for fewer signers
/// cannot lower it. Whether the quorum is reached.
pub fn count(pending: &mut Pending, ballot: &Ballot, required: u32) -> bool {
    let mut evidence = std::mem::take(&mut pending.evidence);
    // An approval stored before evidence was kept has none.
    evidence.resize(pending.approvers.len(), String::new());
    let kept: Vec<(String, String, String)> = std::mem::take(&mut pending.approvers)
        .into_iter()
        .zip(std::mem::take(&mut pending.reasons))
        .zip(evidence)
        .filter(|((who, _), _)| ballot.electorate.contains(who))
        .map(|((who, why), evidence)| (who, why, evidence))
        .collect();
    for (who, why, evidence) in kept {
        pending.approvers.push(who);
        pending.reasons.push(why);
        pending.evidence.push(evidence);
    }
    if !pending.approvers.contains(&ballot.signer) {
        pending.approvers.push(ballot.signer.clone());
        pending.reasons.push(ballot.reason.clone());
        pending.evidence.push(ballot.evidence.clone());
    }
    pending.required = pending.required.max(required);
    pending.approvers.len() >= pending.required as usize
}

/// The approvals of a single node, in memory (a restart forgets them; they expire anyway).
#[derive(Debug, Default)]
pub struct Book {
    pending: Mutex<Vec<Pending>>,
}

/// Why a ballot could not be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_PENDING} approvals are pending already: let some complete or expire")]
pub struct BookFull;

impl Book {
    /// Counts `ballot` towards its change, needing `required` distinct signers; a new approval
    /// expires after `timeout`.
    pub fn vote(
        &self,
        ballot: &Ballot,
        required: u32,
        timeout: Duration,
        now: OffsetDateTime,
    ) -> Result<Vote, BookFull> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = |t: OffsetDateTime| format_timestamp(t);
        // Expired approvals go, and so does every approval of this key cast on another
        // version of it: the key changed since.
        pending.retain(|p| {
            crate::keystore::parse_time(&p.expires).is_ok_and(|expires| expires > now)
                && !(p.instance == ballot.instance
                    && p.key_id == ballot.key_id
                    && p.state != ballot.state)
        });
        let same = pending.iter().position(|p| {
            p.instance == ballot.instance
                && p.key_id == ballot.key_id
                && p.action == ballot.action
                && p.target == ballot.target
        });
        if let Some(i) = same {
            if count(&mut pending[i], ballot, required) {
                let done = pending.remove(i);
                return Ok(Vote::Reached {
                    approvers: done.approvers,
                    reasons: done.reasons,
                    evidence: done.evidence,
                });
            }
            return Ok(Vote::Pending(pending[i].clone()));
        }
        if required <= 1 {
            return Ok(Vote::alone(ballot));
        }
        if pending.len() >= MAX_PENDING {
            return Err(BookFull);
        }
        let expires = now + timeout;
        let approval = Pending {
            id: new_id(),
            instance: ballot.instance.clone(),
            key_id: ballot.key_id,
            action: ballot.action.to_owned(),
            target: ballot.target.clone(),
            approvers: vec![ballot.signer.clone()],
            reasons: vec![ballot.reason.clone()],
            required,
            created: stamp(now),
            expires: stamp(expires),
            state: ballot.state.clone(),
            evidence: vec![ballot.evidence.clone()],
        };
        pending.push(approval.clone());
        Ok(Vote::Pending(approval))
    }

    /// The approvals pending at `now`.
    pub fn list(&self, now: OffsetDateTime) -> Vec<Pending> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .iter()
            .filter(|p| crate::keystore::parse_time(&p.expires).is_ok_and(|t| t > now))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use time::macros::datetime;

    use super::*;

    fn ballot(signer: &str, target: &str) -> Ballot {
        Ballot {
            instance: "db1".into(),
            key_id: 1,
            action: "enable",
            target: target.into(),
            signer: signer.into(),
            reason: format!("{signer} says so"),
            state: "seq 1".into(),
            electorate: vec!["a".into(), "b".into(), "c".into()],
            evidence: format!("{{\"keyid\":\"{signer}\"}}"),
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn two_distinct_signers_complete_a_change_and_the_same_one_counts_once() {
        let book = Book::default();
        let Vote::Pending(first) = book.vote(&ballot("a", ""), 2, HOUR, NOW).unwrap() else {
            panic!("one signer of two completed it");
        };
        let Vote::Pending(again) = book.vote(&ballot("a", ""), 2, HOUR, NOW).unwrap() else {
            panic!("the same signer twice completed it");
        };
        assert_eq!(
            (again.id.as_str(), again.approvers.len()),
            (first.id.as_str(), 1)
        );
        // Another target is another change.
        let Vote::Pending(other) = book
            .vote(&ballot("b", "2027-01-01T00:00:00Z"), 2, HOUR, NOW)
            .unwrap()
        else {
            panic!("a different change counted");
        };
        assert_ne!(other.id, first.id);
        let reached = book.vote(&ballot("b", ""), 2, HOUR, NOW).unwrap();
        let Vote::Reached {
            approvers,
            reasons,
            evidence,
        } = reached
        else {
            panic!("two signers did not complete it");
        };
        assert_eq!(
            Vote::signatures(&evidence).as_deref(),
            Some(r#"[{"keyid":"a"},{"keyid":"b"}]"#)
        );
        assert_eq!(Vote::signatures(&[String::new()]), None);
        assert_eq!(Vote::actor(&approvers), "a+b");
        assert_eq!(
            Vote::reason(&approvers, &reasons),
            "a: a says so; b: b says so"
        );
        assert_eq!(book.list(NOW).len(), 1, "only the other change is left");
        let quiet = [String::new(), "second look".to_owned()];
        assert_eq!(Vote::reason(&approvers, &quiet), "b: second look");
    }

    #[test]
    fn approvals_expire() {
        let book = Book::default();
        book.vote(&ballot("a", ""), 2, HOUR, NOW).unwrap();
        let later = NOW + HOUR;
        assert!(book.list(later).is_empty());
        assert!(matches!(
            book.vote(&ballot("b", ""), 2, HOUR, later).unwrap(),
            Vote::Pending(p) if p.approvers == ["b"]
        ));
    }

    #[test]
    fn one_signer_is_enough_when_one_is_required() {
        let book = Book::default();
        assert!(matches!(
            book.vote(&ballot("a", ""), 1, HOUR, NOW).unwrap(),
            Vote::Reached { approvers, .. } if approvers == ["a"]
        ));
        assert!(book.list(NOW).is_empty());
    }

    #[test]
    fn an_approval_counts_only_while_its_signer_may_and_its_key_is_unchanged() {
        let book = Book::default();
        book.vote(&ballot("a", ""), 2, HOUR, NOW).unwrap();
        // "a" was retired (or lost the action) since: its vote no longer counts.
        let mut without_a = ballot("b", "");
        without_a.electorate.retain(|s| s != "a");
        let Vote::Pending(p) = book.vote(&without_a, 2, HOUR, NOW).unwrap() else {
            panic!("a retired signer's vote completed a change");
        };
        assert_eq!(p.approvers, ["b"]);
        // The key changed since "b" voted: its approval is void, "c" starts anew.
        let mut changed = ballot("c", "");
        changed.state = "seq 2".into();
        let Vote::Pending(p) = book.vote(&changed, 2, HOUR, NOW).unwrap() else {
            panic!("an approval cast on another version of the key counted");
        };
        assert_eq!(p.approvers, ["c"]);
        assert_eq!(book.list(NOW).len(), 1);
        // A replica configured for one signer does not lower an approval's quorum of two.
        let mut again = ballot("c", "");
        again.state = "seq 2".into();
        assert!(matches!(
            book.vote(&again, 1, HOUR, NOW).unwrap(),
            Vote::Pending(p) if p.required == 2
        ));
    }
}
