//! Fleet key state (contract §8): the states of the keys in PostgreSQL, which every replica
//! follows; the secrets stay in each replica's key-store file or token.
//!
//! The database is the one source of truth and the replicas are caches of it. A change is a
//! row update; the table's trigger (`schema.sql`) gives it the next revision, appends it to the
//! hash-chained audit table and notifies the replicas, all in the change's transaction. A
//! replica reads whole snapshots (`follow`), applies them off the request path, and reports the
//! revision it applied, which is how `keys … --wait` knows the fleet followed (`change`).

use time::OffsetDateTime;
use tokio_postgres::GenericClient;

use crate::keystore::{parse_time, KeyRef, KeyState};
use crate::protocol::{InstanceName, KeyId};
use crate::secret::Kcv;

pub mod approvals;
pub mod change;
pub mod db;
pub mod follow;
pub mod polls;
pub mod report;
pub mod schema;

/// Why the fleet's state could not be read or changed. Never holds the database URL.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{0}")]
    Config(String),
    #[error("database: {}", describe(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("database: no answer in time while {0}")]
    Timeout(&'static str),
    #[error("{0}")]
    Schema(String),
    /// The action does not apply to the key's state (a real conflict: 409).
    #[error("{0}")]
    Conflict(String),
    /// What was asked cannot name anything in the database (400).
    #[error("{0}")]
    BadInput(String),
    /// A row the database holds is not valid (a bug or a hand edit: 500, with an error id).
    #[error("{0}")]
    Corrupt(String),
    /// The database cannot be used now (the connection closed, or a login refused): 503.
    #[error("{0}")]
    Unavailable(String),
    /// The key (or the instance) is not in the database.
    #[error("{0}")]
    NoSuchKey(String),
}

/// A database error as an operator can act on it: the server's own message where there is one.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The shared states at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The revision of the last change the snapshot includes.
    pub revision: i64,
    /// A digest of every row as stored ([`ROWS_DIGEST`]): a row changed without a revision
    /// (outside the trigger) changes it, and the replica reads again.
    pub digest: String,
    /// Every key's shared state; its `kcv` is the KCV the fleet expects of the secret.
    pub keys: Vec<KeyState>,
    /// Keys whose row is not the state of their last audited change: changed outside the
    /// audit chain, so in doubt (contract §7: served only as far as the row withdraws them).
    pub unaudited: Vec<KeyRef>,
    /// The audit chain's last record, `(seq, hash)`, read with the rows (contract §10: the
    /// head every change moves, exported as `ccs_audit_head`).
    pub head: Option<(u64, String)>,
}

/// The digest of every key row as stored, in one order; the heartbeat compares it with the
/// snapshot's. An expression over `ccs_key_state`.
pub const ROWS_DIGEST: &str = "(SELECT md5(coalesce(string_agg(
        concat_ws(' ', d.instance, d.key_id, d.kcv, d.disabled, d.revision, ccs_time(d.not_after),
                  d.lease),
        ',' ORDER BY d.instance, d.key_id), '')) FROM ccs_key_state d)";

/// Reads every key's state and the revision they are at, in one statement (so one snapshot:
/// a change's row and revision are committed together), each row judged against the key's
/// last audited change (the record at the row's revision, with the row's state).
pub async fn read_snapshot(client: &impl GenericClient) -> Result<Snapshot, FleetError> {
    let sql = format!(
        "SELECT r.revision, k.instance, k.key_id, k.kcv, k.disabled, ccs_time(k.not_after),
                a.seq IS NOT DISTINCT FROM k.revision
                    AND a.after = ccs_state_json(k.disabled, k.kcv, k.not_after, k.lease),
                {ROWS_DIGEST}, k.lease,
                (SELECT seq || ':' || hash FROM ccs_audit ORDER BY seq DESC LIMIT 1)
         FROM ccs_revision r
         LEFT JOIN ccs_key_state k ON true
         LEFT JOIN LATERAL (
             SELECT seq, after FROM ccs_audit
             WHERE instance = k.instance AND key_id = k.key_id AND before <> after
             ORDER BY seq DESC LIMIT 1
         ) a ON true"
    );
    let rows = client.query(&sql, &[]).await.map_err(schema_missing)?;
    let revision = rows.first().map_or(0, |row| row.get(0));
    let digest = rows.first().map_or_else(String::new, |row| row.get(7));
    let head = rows
        .first()
        .and_then(|row| row.get::<_, Option<String>>(9))
        .and_then(|head| {
            let (seq, hash) = head.split_once(':')?;
            Some((seq.parse().ok()?, hash.to_owned()))
        });
    let mut keys = Vec::with_capacity(rows.len());
    let mut unaudited = Vec::new();
    for row in &rows {
        let Some(instance) = row.get::<_, Option<String>>(1) else {
            continue; // no key at all: the one row of the join
        };
        let not_after: Option<String> = row.get(5);
        let key = key_state(
            &instance,
            row.get(2),
            row.get(3),
            row.get(4),
            not_after.as_deref(),
            row.get(8),
        )?;
        if !row.get::<_, Option<bool>>(6).unwrap_or(false) {
            unaudited.push((key.instance.clone(), key.key_id));
        }
        keys.push(key);
    }
    Ok(Snapshot {
        revision,
        digest,
        keys,
        unaudited,
        head,
    })
}

/// The revision of the last committed change; tells a database without the schema apart.
pub async fn current_revision(client: &impl GenericClient) -> Result<i64, FleetError> {
    let row = client
        .query_one("SELECT revision FROM ccs_revision", &[])
        .await
        .map_err(schema_missing)?;
    Ok(row.get(0))
}

/// `e`, or what to do when it says the schema was never migrated.
pub fn schema_missing(e: tokio_postgres::Error) -> FleetError {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(&SqlState::UNDEFINED_TABLE | &SqlState::UNDEFINED_FUNCTION) => FleetError::Schema(
            "the database has no ccs-endpoint schema: run `ccs-endpoint db migrate --config …` with the owner's role".into(),
        ),
        _ => e.into(),
    }
}

/// A row, checked as the key-store file's entries are.
pub fn key_state(
    instance: &str,
    key_id: i64,
    kcv: &str,
    disabled: bool,
    not_after: Option<&str>,
    lease: bool,
) -> Result<KeyState, FleetError> {
    let bad = |what: String| {
        FleetError::Corrupt(format!("ccs_key_state row ({instance}, {key_id}): {what}"))
    };
    Ok(KeyState {
        instance: InstanceName::parse(instance).map_err(|e| bad(e.to_string()))?,
        key_id: KeyId::try_from(key_id).map_err(|_| bad("negative key_id".into()))?,
        disabled,
        not_after: not_after.map(parse_time).transpose().map_err(bad)?,
        lease: lease && not_after.is_some(),
        kcv: kcv.parse::<Kcv>().map_err(bad)?,
    })
}

/// `t` as the database takes it (RFC 3339).
pub fn sql_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Who the operator is, as the audit chain names a command-line change: `cli:<user>`.
pub fn cli_actor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{user}")
}
