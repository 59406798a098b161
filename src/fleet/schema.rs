//! `db migrate`: the schema's versions, applied in order, once, under an advisory lock so that
//! every replica's init container may run it at the same time.

use tokio_postgres::Client;

use super::FleetError;

/// The schema's versions: (version, what it brings, its SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "key states, revisions, the audit chain, replicas, poll outcomes",
        include_str!("schema.sql"),
    ),
    (
        2,
        "the admin API's pending approvals and nonces; audit events that change no state",
        include_str!("schema_api.sql"),
    ),
    (
        3,
        "owner functions with fixed lookups; the login in every audit record; each replica its own rows",
        include_str!("schema_v3.sql"),
    ),
    (
        4,
        "an API change's signatures in its audit record",
        include_str!("schema_v4.sql"),
    ),
];

/// Where a migration's SQL names the schema that holds the tables (as a quoted identifier).
const SCHEMA: &str = "@schema@";

/// The advisory lock `db migrate` holds ("ccs_migr").
const LOCK: i64 = 0x6363_735f_6d69_6772;

/// The newest schema version this binary knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Refuses a database whose schema is older than this binary's (its queries would fail one by
/// one), or newer, saying what to run.
pub async fn require_current(
    client: &impl tokio_postgres::GenericClient,
) -> Result<(), FleetError> {
    let found: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM ccs_schema_version",
            &[],
        )
        .await
        .map_err(super::schema_missing)?
        .get(0);
    match found.cmp(&latest()) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(FleetError::Schema(format!(
            "the database's schema is version {found}, this binary needs version {}: run `ccs-endpoint db migrate --config …` with the owner's role",
            latest()
        ))),
        std::cmp::Ordering::Greater => Err(FleetError::Schema(format!(
            "the database's schema is version {found}, newer than this binary knows ({}): upgrade ccs-endpoint",
            latest()
        ))),
    }
}

/// Writes the fleet's quorum (`ccs_quorum`), which every replica's API counts together with
/// its own (the larger wins).
pub async fn set_quorum(
    client: &impl tokio_postgres::GenericClient,
    quorum: &crate::config::Quorum,
) -> Result<(), FleetError> {
    let actions = ["disable", "shutdown", "renew", "enable", "export"];
    let required: Vec<i32> = [
        quorum.disable,
        quorum.shutdown,
        quorum.renew,
        quorum.enable,
        quorum.export,
    ]
    .iter()
    .map(|&n| i32::try_from(n).unwrap_or(i32::MAX))
    .collect();
    client
        .execute(
            "INSERT INTO ccs_quorum (action, required) SELECT * FROM unnest($1::text[], $2::int4[])
             ON CONFLICT (action) DO UPDATE SET required = EXCLUDED.required",
            &[&actions.as_slice(), &required],
        )
        .await?;
    Ok(())
}

/// What one `db migrate` did.
#[derive(Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The version found before.
    pub from: i32,
    /// The versions applied now (empty: the schema was current).
    pub applied: Vec<(i32, &'static str)>,
}

/// Creates or upgrades the schema in one transaction.
pub async fn migrate(client: &mut Client) -> Result<Migrated, FleetError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ccs_schema_version (
            version integer PRIMARY KEY,
            description text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let from: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM ccs_schema_version",
            &[],
        )
        .await?
        .get(0);
    if from > latest() {
        return Err(FleetError::Schema(format!(
            "the database's schema is version {from}, newer than this binary knows ({}): upgrade ccs-endpoint",
            latest()
        )));
    }
    // The tables live in the first schema of the owner's search_path (where version 1 made
    // them); later versions name it in full.
    let schema: Option<String> = tx.query_one("SELECT current_schema()", &[]).await?.get(0);
    let schema = schema.ok_or_else(|| {
        FleetError::Schema(
            "the migrating role's search_path names no schema it can use: set one (ALTER ROLE … SET search_path)".into(),
        )
    })?;
    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
    let mut applied = Vec::new();
    for &(version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > from) {
        let sql = sql.replace(SCHEMA, &quoted);
        tx.batch_execute(&sql).await.map_err(|e| {
            FleetError::Schema(format!(
                "schema version {version} failed: {}",
                FleetError::from(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO ccs_schema_version (version, description) VALUES ($1, $2)",
            &[&version, &description],
        )
        .await?;
        applied.push((version, description));
    }
    tx.commit().await?;
    Ok(Migrated { from, applied })
}
