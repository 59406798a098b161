//! Where the admin API reads and changes key states: the key-store file of a single node (its
//! audit chain and its nonces beside it, its approvals in memory), or a fleet's database (all three
//! shared by every replica). Both follow the same steps: the key must exist and the action must
//! apply to its state (404, 409) before a signer's ballot is counted; a change that reaches its
//! quorum is made, recorded with its signers, and served before the answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::file::{find, key_version, write_change, Signed};
use super::nonce_file::{NonceError, NonceFile};
use crate::fleet::change::{change_in, wait_applied};
use crate::fleet::db::{Session, Target};
use crate::fleet::{approvals, report, FleetError};
use crate::httpsig::Refusal;
use crate::keystore::{KeyState, SecretsIn};
use crate::protocol::{InstanceName, KeyId};
use crate::quorum::{Ballot, Book, Pending, Vote};
use crate::runtime::reload::Reloader;
use crate::runtime::state::AppState;
use crate::switch::Action;

/// Nonces remembered at once on a single node.
const NONCES: usize = 10_000;

/// A key as the API shows it.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub state: KeyState,
    /// The last poll: replica (a fleet's), time, status, reason, validUntil.
    pub last_poll: Option<report::Poll>,
    /// In a fleet: the revision, time, actor and reason of its last change.
    pub changed: Option<(i64, String, String, String)>,
}

/// What a change request came to.
#[derive(Debug)]
pub enum Outcome {
    Applied {
        revision: i64,
        applied: usize,
        total: usize,
        approvers: Vec<String>,
        key: KeyState,
        /// The audit chain's new head, `SEQ:HASH` (PRODUCT.md §10), when it was recorded.
        head: Option<String>,
    },
    Pending(Pending),
}

/// Why a request could not be served, by the status it answers.
#[derive(Debug)]
pub enum Failure {
    /// 404.
    NoSuchKey(String),
    /// 409: the action does not apply to the key's state.
    Refused(String),
    /// 503: the state cannot be read or changed now (the caller may retry).
    Unavailable(String),
}

impl From<FleetError> for Failure {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::NoSuchKey(m) => Failure::NoSuchKey(m),
            FleetError::Refused(m) => Failure::Refused(m),
            other => Failure::Unavailable(other.to_string()),
        }
    }
}

/// The state the API works on.
pub enum Backend {
    File(FileBackend),
    Fleet(Box<FleetBackend>),
}

/// A single node: the key-store file, reloaded into the running server after a change.
pub struct FileBackend {
    pub store: PathBuf,
    pub secrets: SecretsIn,
    pub state: Arc<AppState>,
    pub reloader: Arc<Reloader>,
    pub book: Book,
    pub nonces: NonceFile,
}

/// A fleet: its database, connected per request (the API is seldom called), a few at a time.
pub struct FleetBackend {
    pub target: Target,
    /// Database sessions the API holds at once: a burst of signed requests queues here rather
    /// than taking the database's connections.
    pub sessions: tokio::sync::Semaphore,
    pub max_staleness: Duration,
    /// How long a change waits for the live replicas to apply it before answering.
    pub wait: Duration,
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
        let blocked = super::writable_beside(&self.store).err();
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

fn fleet_view(status: report::KeyStatus) -> KeyView {
    KeyView {
        state: status.state,
        last_poll: status.last_poll,
        changed: Some((
            status.revision,
            status.changed_at,
            status.changed_by,
            status.reason,
        )),
    }
}

impl Backend {
    /// Takes a verified signature's nonce, or refuses a replay.
    pub async fn take_nonce(
        &self,
        signer: &str,
        nonce: &str,
        created: i64,
        now: i64,
        skew: i64,
    ) -> Result<(), Result<Refusal, Failure>> {
        match self {
            Backend::File(file) => {
                file.nonces
                    .take(signer, nonce, created, now, skew)
                    .map_err(|e| match e {
                        NonceError::Refused(refused) => Ok(refused),
                        NonceError::Unavailable(why) => Err(file.unwritten(why)),
                    })
            }
            Backend::Fleet(fleet) => {
                let (_turn, session) = fleet.session().await.map_err(Err)?;
                let until = created.saturating_add(skew);
                match approvals::take_nonce(&session.client, signer, nonce, until).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Ok(Refusal::Replayed(nonce.to_owned()))),
                    Err(e) => Err(Err(e.into())),
                }
            }
        }
    }

    /// Every key (`None`), or one key.
    pub async fn keys(&self, key: Option<(&InstanceName, KeyId)>) -> Result<Vec<KeyView>, Failure> {
        match self {
            Backend::File(file) => {
                let store = file.state.keys.store();
                Ok(store
                    .list()
                    .into_iter()
                    .filter(|k| key.is_none_or(|(i, id)| &k.instance == i && k.key_id == id))
                    .map(|k| file_view(&file.state, k))
                    .collect())
            }
            Backend::Fleet(fleet) => {
                let (_turn, session) = fleet.session().await?;
                let (instance, key_id) = key.map_or((None, None), |(i, k)| (Some(i), Some(k)));
                let keys = report::key_status(&session.client, instance, key_id).await?;
                Ok(keys.into_iter().map(fleet_view).collect())
            }
        }
    }

    /// The approvals pending now.
    pub async fn approvals(&self) -> Result<Vec<Pending>, Failure> {
        match self {
            Backend::File(file) => Ok(file.book.list(OffsetDateTime::now_utc())),
            Backend::Fleet(fleet) => {
                let (_turn, session) = fleet.session().await?;
                Ok(approvals::list(&session.client).await?)
            }
        }
    }

    /// Counts `ballot` for `action` and, at its quorum `required`, makes the change.
    pub async fn change(
        &self,
        mut ballot: Ballot,
        action: Action,
        required: u32,
        timeout: Duration,
    ) -> Result<Outcome, Failure> {
        match self {
            Backend::File(file) => {
                let (store, secrets) = (file.store.clone(), file.secrets);
                let reloader = Arc::clone(&file.reloader);
                // The book is shared; the file work blocks.
                let book = &file.book;
                let instance = InstanceName::parse(&ballot.instance)
                    .map_err(|e| Failure::NoSuchKey(e.to_string()))?;
                let now = OffsetDateTime::now_utc();
                let before = find(&store, secrets, &instance, ballot.key_id)?;
                action.apply(&before, now).map_err(Failure::Refused)?;
                // A kill (one signer) never waits on the audit chain; an approval is tied to
                // the key's version, which the chain tells.
                if required > 1 {
                    ballot.state = key_version(&store, &before)?;
                }
                let vote = book
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
                // A change that could not be written is most often a read-only directory:
                // said plainly, here and by /readyz, until one can be written.
                file.written(result)
            }
            Backend::Fleet(fleet) => fleet.change(ballot, action, required, timeout).await,
        }
    }
}

/// Database sessions the API holds at once.
pub const FLEET_SESSIONS: usize = 4;

impl FleetBackend {
    /// A database session, in turn: at most [`FLEET_SESSIONS`] at once (the permit goes
    /// with it).
    pub(super) async fn session(
        &self,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, Session), Failure> {
        let turn = self
            .sessions
            .acquire()
            .await
            .map_err(|_| Failure::Unavailable("shutting down".into()))?;
        Ok((turn, self.target.connect().await?))
    }

    async fn change(
        &self,
        mut ballot: Ballot,
        action: Action,
        required: u32,
        timeout: Duration,
    ) -> Result<Outcome, Failure> {
        let (_turn, mut session) = self.session().await?;
        let tx = session
            .client
            .transaction()
            .await
            .map_err(FleetError::from)?;
        let instance =
            InstanceName::parse(&ballot.instance).map_err(|e| Failure::NoSuchKey(e.to_string()))?;
        // The key must exist and the action apply before a ballot is counted (checked again,
        // under the row's lock, when the change is made).
        let key = report::key_status(&tx, Some(&instance), Some(ballot.key_id)).await?;
        let Some(key) = key.into_iter().next() else {
            return Err(Failure::NoSuchKey(format!(
                "the fleet database has no key_id {} for instance {instance}",
                ballot.key_id
            )));
        };
        action
            .apply(&key.state, OffsetDateTime::now_utc())
            .map_err(Failure::Refused)?;
        ballot.state = format!("revision {}", key.revision);
        let vote = approvals::vote(&tx, &ballot, required, timeout).await?;
        let (approvers, reasons, evidence) = match vote {
            Vote::Pending(p) => {
                tx.commit().await.map_err(FleetError::from)?;
                return Ok(Outcome::Pending(p));
            }
            Vote::Reached {
                approvers,
                reasons,
                evidence,
            } => (approvers, reasons, evidence),
        };
        let actor = Vote::actor(&approvers);
        let reason = Vote::reason(&approvers, &reasons);
        super::export::set_signatures(&tx, &evidence).await?;
        let changed =
            change_in(&tx, &actor, &instance, Some(ballot.key_id), action, &reason).await?;
        tx.commit().await.map_err(FleetError::from)?;
        let Some(changed) = changed.into_iter().next() else {
            return Err(Failure::NoSuchKey("the key vanished".into()));
        };
        let head = report::audit_hash(&session.client, changed.revision)
            .await?
            .map(|hash| format!("{}:{hash}", changed.revision));
        let applied = wait_applied(
            &session.client,
            changed.revision,
            self.max_staleness,
            self.wait,
        )
        .await?;
        Ok(Outcome::Applied {
            revision: changed.revision,
            applied: applied.applied.len(),
            total: applied.applied.len() + applied.laggards.len(),
            approvers,
            key: changed.after,
            head,
        })
    }
}
