//! A replica's watch on the fleet's audit chain (contract §10): the whole chain is read from
//! the database and verified at start-up and every [`EVERY`], and `ccs_audit_chain_ok` says
//! whether it holds (alert `CcsAuditChainBroken`), as it does beside a key-store file. A
//! database that cannot be read leaves the gauge as it was: its own alerts cover that.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::metrics::Metrics;
use crate::chain;
use crate::fleet::db::Target;
use crate::fleet::report;

/// How often the chain is verified again.
pub const EVERY: Duration = Duration::from_secs(300);

/// Verifies the chain until `stop`.
pub async fn watch_chain(target: Target, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    let mut said: Option<bool> = None;
    loop {
        let verified = async {
            let session = target.connect().await?;
            report::audit(&session.client, None).await
        };
        match tokio::time::timeout(Duration::from_secs(60), verified).await {
            Ok(Ok(records)) => {
                let result = chain::verify(&records);
                metrics.audit_chain(result.is_ok());
                metrics.audit_head(result.is_ok().then(|| records.last()).flatten());
                match (&result, said) {
                    (Err(broken), None | Some(true)) => {
                        tracing::error!(target: "ccs_endpoint::audit", records = records.len(), %broken, "the fleet's audit chain is broken: `ccs-endpoint audit verify` names the first record changed, removed or reordered");
                    }
                    (Ok(()), Some(false)) => {
                        tracing::info!(
                            records = records.len(),
                            "the fleet's audit chain verifies again"
                        );
                    }
                    _ => {}
                }
                said = Some(result.is_ok());
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "the fleet's audit chain could not be read to verify it");
            }
            Err(_) => tracing::debug!("the fleet's audit chain could not be read in 60 s"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
