//! The admin API on a single node: the key-store file, edited as `ccs-endpoint keys` edits it
//! (by the one rule of `switch::Action`), its audit chain locked first and appended with the
//! signers' key ids and signed requests, then the running server reloaded, so that the change
//! is served before the API answers. Its nonces are kept beside the store, its approvals in
//! memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::export::export_record;
use super::file_store::{
    find, key_version, record_event, writable_beside, write_change, Event, Signed,
};
use super::nonce_file::{NonceError, NonceFile};
use super::outcome::{Exported, Failure, KeyView, Outcome};
use crate::fleet::report;
use crate::httpsig::Refusal;
use crate::keystore::{KeyState, SecretsIn};
use crate::protocol::{InstanceName, KeyId};
use crate::quorum::{Ballot, Book, Pending, Vote};
use crate::runtime::reload::Reloader;
use crate::runtime::state::AppState;
use crate::switch::Action;

/// Nonces remembered at once on a single node.
const NONCES: usize = 10_000;

/// A single node: the key-store file, reloaded into the running server after a change.
pub struct FileBackend {
    pub store: PathBuf,
    pub secrets: SecretsIn,
    pub state: Arc<AppState>,
    pub reloader: Arc<Reloader>,
    pub book: Book,
    pub nonces: NonceFile,
}

impl FileBackend {
    pub fn new(
        store: PathBuf,
        secrets: SecretsIn,
        state: Arc<AppState>,
        reloader: Arc<Reloader>,
    ) -> Self {
        let nonces = NonceFile::beside(&store, NONCES, OffsetDateTime::now_utc().unix_timestamp());
        Self {
            store,
            secrets,
            state,
            reloader,
            book: Book::default(),
            nonces,
        }
    }
}

impl FileBackend {
    /// `result` of a write beside the key store: a failure to write is most often a read-only
    /// directory (the systemd unit's `ReadOnlyPaths=`), which the failure then says plainly,
    /// and `/readyz` with it, until a write succeeds.
    fn written<T>(&self, result: Result<T, Failure>) -> Result<T, Failure> {
        match result {
            Ok(done) => {
                self.state.set_api_blocked(None);
                Ok(done)
            }
            Err(Failure::Unavailable(why)) => Err(self.unwritten(why)),
            Err(other) => Err(other),
        }
    }

    /// A write beside the key store that failed (`why`), explained.
    fn unwritten(&self, why: String) -> Failure {
        let blocked = writable_beside(&self.store).err();
        self.state.set_api_blocked(blocked.clone());
        Failure::Unavailable(blocked.unwrap_or(why))
    }
}

fn file_view(state: &AppState, key: KeyState) -> KeyView {
    let last_poll = state
        .last_polls
        .get(&key.instance, key.key_id)
        .map(|a| report::Poll {
            replica: String::new(),
            at: crate::protocol::format_timestamp(a.at),
            status: a.status,
            reason: a.reason.to_owned(),
            valid_until: a.valid_until.map(crate::protocol::format_timestamp),
        });
    KeyView {
        state: key,
        last_poll,
        changed: None,
    }
}

impl FileBackend {
    /// Takes a verified signature's nonce, kept in the nonce file before it counts.
    pub(super) fn take_nonce(
        &self,
        signer: &str,
        nonce: &str,
        created: i64,
        now: i64,
        skew: i64,
    ) -> Result<(), Result<Refusal, Failure>> {
        self.nonces
            .take(signer, nonce, created, now, skew)
            .map_err(|e| match e {
                NonceError::Refused(refused) => Ok(refused),
                NonceError::Unavailable(why) => Err(self.unwritten(why)),
            })
    }

    /// Every key the server serves (`None`), or one key, with its last poll.
    pub(super) fn keys(&self, key: Option<(&InstanceName, KeyId)>) -> Vec<KeyView> {
        let store = self.state.keys.store();
        store
            .list()
            .into_iter()
            .filter(|k| key.is_none_or(|(i, id)| &k.instance == i && k.key_id == id))
            .map(|k| file_view(&self.state, k))
            .collect()
    }

    /// The approvals pending now (in memory).
    pub(super) fn approvals(&self) -> Vec<Pending> {
        self.book.list(OffsetDateTime::now_utc())
    }

    /// Counts `ballot` for `action` and, at its quorum `required`, writes the change.
    pub(super) async fn change(
        &self,
        mut ballot: Ballot,
        action: Action,
        required: u32,
        timeout: Duration,
    ) -> Result<Outcome, Failure> {
        let (store, secrets) = (self.store.clone(), self.secrets);
        let reloader = Arc::clone(&self.reloader);
        let instance =
            InstanceName::parse(&ballot.instance).map_err(|e| Failure::NoSuchKey(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let before = find(&store, secrets, &instance, ballot.key_id)?;
        action.apply(&before, now).map_err(Failure::Refused)?;
        // A kill (one signer) never waits on the audit chain; an approval is tied to the
        // key's version, which the chain tells.
        if required > 1 {
            ballot.state = key_version(&store, &before)?;
        }
        let vote = self
            .book
            .vote(&ballot, required, timeout, now)
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        let (approvers, reasons, evidence) = match vote {
            Vote::Pending(p) => return Ok(Outcome::Pending(p)),
            Vote::Reached {
                approvers,
                reasons,
                evidence,
            } => (approvers, reasons, evidence),
        };
        let key_id = ballot.key_id;
        let work = move || {
            let signed = Signed {
                approvers: &approvers,
                reasons: &reasons,
                evidence: &evidence,
            };
            write_change(
                &store, secrets, &reloader, &instance, key_id, action, signed,
            )
            .map(|(revision, key, head)| Outcome::Applied {
                revision,
                applied: 1,
                total: 1,
                approvers,
                key,
                head,
            })
        };
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Failure::Unavailable(format!("the change did not finish: {e}")))?;
        // A change that could not be written is most often a read-only directory: said
        // plainly, here and by /readyz, until one can be written.
        self.written(result)
    }

    /// An export: counted in the book and, at its quorum, wrapped and recorded in the chain.
    pub(super) async fn export<F, Fut>(
        &self,
        mut ballot: Ballot,
        required: u32,
        timeout: Duration,
        wrap: F,
    ) -> Result<Exported, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Value, Failure>>,
    {
        let store = self.state.keys.store();
        let key = store
            .states()
            .find(|k| k.instance.as_str() == ballot.instance && k.key_id == ballot.key_id)
            .ok_or_else(|| Failure::NoSuchKey("no such key".into()))?;
        ballot.state = key_version(&self.store, key)?;
        let vote = self
            .book
            .vote(&ballot, required, timeout, OffsetDateTime::now_utc())
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        let (approvers, reasons, evidence) = match vote {
            Vote::Pending(p) => return Ok(Exported::Pending(p)),
            Vote::Reached {
                approvers,
                reasons,
                evidence,
            } => (approvers, reasons, evidence),
        };
        let answer = wrap().await?;
        let (actor, reason) = export_record(&ballot.target, &approvers, &reasons);
        let signatures = Vote::signatures(&evidence);
        let path = self.store.clone();
        let (instance, key_id) = (ballot.instance.clone(), ballot.key_id);
        let state = self.state.keys.store();
        tokio::task::spawn_blocking(move || {
            let event = Event {
                action: "export",
                actor: &actor,
                reason: &reason,
                signatures,
            };
            record_event(&path, &state, &instance, key_id, event)
        })
        .await
        .map_err(|e| Failure::Unavailable(format!("the export's record did not finish: {e}")))?;
        Ok(Exported::Done { answer, approvers })
    }
}
