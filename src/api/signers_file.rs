//! The signers file, hot: looked at (one `stat`) on every API request and read again when it
//! changed. A file that cannot be used fails closed — every API request answers 503 until it is
//! fixed — because keeping the last good signers could keep a withdrawn signer signing (§7).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::runtime::metrics::Metrics;
use crate::runtime::settle::{stamp, Stamp};
use crate::signers::Signers;

/// The signers in force, and the file they come from.
pub struct SignersFile {
    path: PathBuf,
    allow_open: bool,
    metrics: Arc<Metrics>,
    loaded: Mutex<(Stamp, Result<Arc<Signers>, String>)>,
}

impl SignersFile {
    /// Reads `path` now: a server does not start with a signers file it cannot use.
    pub fn open(path: PathBuf, allow_open: bool, metrics: Arc<Metrics>) -> Result<Self, String> {
        let at = stamp(&path);
        let signers = Self::read(&path, allow_open)?;
        Ok(Self {
            path,
            allow_open,
            metrics,
            loaded: Mutex::new((at, Ok(signers))),
        })
    }

    fn read(path: &std::path::Path, allow_open: bool) -> Result<Arc<Signers>, String> {
        let (signers, warning) = Signers::load(path, allow_open).map_err(|e| e.to_string())?;
        if let Some(warning) = warning {
            tracing::warn!(file = %path.display(), %warning, "signers file");
        }
        Ok(Arc::new(signers))
    }

    /// The signers in force, read again if the file changed; why there are none usable.
    pub fn current(&self) -> Result<Arc<Signers>, String> {
        let now = stamp(&self.path);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.0 != now {
            let result = Self::read(&self.path, self.allow_open);
            match &result {
                Ok(signers) => {
                    tracing::info!(target: "ccs_endpoint::audit", event = "reload", component = "signers", file = %self.path.display(), signers = signers.len(), "signers reloaded");
                }
                Err(error) => {
                    tracing::error!(target: "ccs_endpoint::audit", event = "reload", component = "signers", %error, "the signers file cannot be used: every admin API request answers 503 until it is fixed");
                }
            }
            self.metrics.api_signers(result.is_ok());
            *loaded = (now, result);
        }
        loaded.1.clone()
    }
}
