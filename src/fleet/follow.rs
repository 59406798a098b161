//! A replica following the shared state: reads a whole snapshot at connect and at every
//! notification, confirms it on a short period (a heartbeat that also reports the revision
//! applied), writes poll outcomes in batches, and reconnects with backoff when the database
//! goes away. It only publishes what it read and when it last confirmed it; what is served in
//! between — and when a state is too old to serve — is the applier's decision (`runtime::fleet`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_postgres::Client;

use super::db::{Target, CHANNEL};
use super::polls::{self, PollBatch};
use super::{read_snapshot, schema_missing, sql_time, FleetError, Snapshot, ROWS_DIGEST};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A snapshot and the moment it was last known current (when the read that confirmed it was
/// sent: a conservative age).
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub snapshot: Arc<Snapshot>,
    pub at: Instant,
}

/// What the follower reports to, and hears from, the rest of the replica.
pub struct Links {
    /// The last snapshot read and its confirmation.
    pub confirmed: watch::Sender<Option<Confirmed>>,
    /// The revision the replica serves (set by the applier once it swapped it in).
    pub applied: watch::Receiver<i64>,
    /// Told whether the database is reachable.
    pub connected: Box<dyn Fn(bool) + Send + Sync>,
    /// Set when the replica stops: the follower marks it stopped and returns.
    pub stop: watch::Receiver<bool>,
}

/// Follows the shared state for one replica.
pub struct Follower {
    pub target: Target,
    pub replica: String,
    pub max_staleness: Duration,
    pub started: OffsetDateTime,
    pub polls: Arc<PollBatch>,
}

impl Follower {
    /// How often a quiet state is confirmed: a quarter of `max_staleness`, so that three
    /// confirmations may be lost before the state goes stale.
    fn confirm_every(&self) -> Duration {
        (self.max_staleness / 4).clamp(Duration::from_millis(200), Duration::from_millis(2500))
    }

    /// How long one statement may take before the connection is given up.
    fn op_timeout(&self) -> Duration {
        (self.max_staleness / 2).clamp(Duration::from_secs(1), Duration::from_secs(5))
    }

    /// Follows until told to stop, reconnecting with backoff.
    pub async fn run(self, mut links: Links) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let began = Instant::now();
            let error = match self.session(&mut links).await {
                Ok(()) => return,
                Err(e) => e,
            };
            (links.connected)(false);
            tracing::warn!(replica = %self.replica, %error, retry_in_ms = backoff.as_millis() as u64, "fleet state: the database cannot be reached; keys answer 503 once the shared state is older than max_staleness");
            if began.elapsed() > Duration::from_secs(10) {
                backoff = MIN_BACKOFF;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = links.stop.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection: returns `Ok` when told to stop, else the error that ended it.
    async fn session(&self, links: &mut Links) -> Result<(), FleetError> {
        let op = self.op_timeout();
        let mut session = self.target.connect().await?;
        let client = Arc::new(session.client);
        timed(
            op,
            "checking the schema version",
            super::schema::require_current(&*client),
        )
        .await?;
        timed(op, "listening", async {
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            Ok(())
        })
        .await?;
        // Registered before anything read here is served: a replica the fleet cannot see (its
        // name taken by another login) is one `--wait` cannot vouch for, so it never serves.
        let applied_now = *links.applied.borrow();
        self.heartbeat(&client, applied_now, op).await?;
        (links.connected)(true);
        tracing::info!(replica = %self.replica, "fleet state: connected to the database");
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        // One timer for the session: a sleep made anew in the loop would restart whenever
        // another branch (the flush tick) fired first, and never confirm.
        let mut confirm = tokio::time::interval(self.confirm_every());
        confirm.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flushing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let asked = Instant::now();
            let snapshot = timed(op, "reading the key states", read_snapshot(&*client)).await?;
            let read = (snapshot.revision, snapshot.digest.clone());
            let revision = snapshot.revision;
            links.confirmed.send_replace(Some(Confirmed {
                snapshot: Arc::new(snapshot),
                at: asked,
            }));
            let applied = links.applied.wait_for(|r| *r >= revision);
            let _ = tokio::time::timeout(Duration::from_secs(1), applied).await;
            let mut applied = *links.applied.borrow();
            if self.heartbeat(&client, applied, op).await? != read {
                continue;
            }
            confirm.reset();
            loop {
                tokio::select! {
                    _ = session.changed.notified() => break,
                    _ = confirm.tick() => {
                        let asked = Instant::now();
                        applied = *links.applied.borrow();
                        // A new revision, or rows that changed without one: read again.
                        if self.heartbeat(&client, applied, op).await? != read {
                            break;
                        }
                        links.confirmed.send_modify(|c| {
                            if let Some(c) = c {
                                c.at = asked;
                            }
                        });
                    }
                    _ = flush.tick() => {
                        if flushing.as_ref().is_none_or(|f| f.is_finished()) {
                            flushing = Some(self.flush(&client));
                        }
                    }
                    closed = &mut session.closed => {
                        return Err(match closed {
                            Ok(Err(e)) => e.into(),
                            _ => FleetError::Unavailable("the database closed the connection".into()),
                        });
                    }
                    _ = links.stop.changed() => {
                        let stopped = async {
                            client.execute(
                                "UPDATE ccs_replica SET stopped_at = now() WHERE name = $1",
                                &[&self.replica],
                            ).await
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(1), stopped).await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Registers the replica (or says it is still here) with the revision it serves; returns
    /// the revision of the last committed change and the digest of the rows as stored.
    async fn heartbeat(
        &self,
        client: &Client,
        applied: i64,
        op: Duration,
    ) -> Result<(i64, String), FleetError> {
        let version = env!("CARGO_PKG_VERSION");
        let started = sql_time(self.started);
        timed(op, "confirming the key states", async {
            let row = client
                .query_one(
                    &format!(
                        "INSERT INTO ccs_replica (name, version, started_at, last_seen, applied_revision)
                     VALUES ($1, $2, $3::text::timestamptz, now(), $4)
                     ON CONFLICT (name) DO UPDATE SET
                         version = EXCLUDED.version, started_at = EXCLUDED.started_at,
                         last_seen = now(), applied_revision = EXCLUDED.applied_revision,
                         stopped_at = NULL, login = session_user
                     RETURNING (SELECT revision FROM ccs_revision), {ROWS_DIGEST}"
                    ),
                    &[&self.replica, &version, &started, &applied],
                )
                .await
                .map_err(|e| registration_refused(e, &self.replica))?;
            Ok((row.get(0), row.get(1)))
        })
        .await
    }

    /// Writes the queued poll outcomes in the background (one write at a time).
    fn flush(&self, client: &Arc<Client>) -> tokio::task::JoinHandle<()> {
        let outcomes = self.polls.take();
        let (client, replica) = (Arc::clone(client), self.replica.clone());
        let op = self.op_timeout();
        tokio::spawn(async move {
            let written = timed(op, "recording poll outcomes", async {
                polls::write(&client, &replica, &outcomes).await
            });
            if let Err(error) = written.await {
                tracing::warn!(%error, dropped = outcomes.len(), "fleet state: poll outcomes not recorded");
            }
        })
    }
}

/// A heartbeat's error as an operator can act on it: row-level security refuses a replica name
/// that another login registered (schema version 3: each replica writes only its own rows).
fn registration_refused(e: tokio_postgres::Error, replica: &str) -> FleetError {
    if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
        && e.as_db_error()
            .is_some_and(|d| d.message().contains("row-level security"))
    {
        return FleetError::Unavailable(format!(
            "replica name {replica:?} is registered in ccs_replica by another database login: give each replica its own name ([state] replica) and its own login"
        ));
    }
    schema_missing(e)
}

/// `work`, or a timeout error naming what it was doing.
async fn timed<T>(
    limit: Duration,
    doing: &'static str,
    work: impl std::future::Future<Output = Result<T, FleetError>>,
) -> Result<T, FleetError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| FleetError::Timeout(doing))?
}
