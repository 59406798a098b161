//! The signers file, hot: looked at (one `stat`) on every API request and read again when it
//! changed, as the key store is (contract §7): kill wins at once, un-kill settles. What a
//! change withdraws — a signer removed, retired, expired sooner, an action taken away, a secret
//! replaced — is in force from the next request; what it gives — a signer added or
//! reactivated, an action, a later expiry, a new secret — only once the file has stayed the
//! same, bytes and metadata, for the settle time and read the same again. A file that cannot be
//! used (a `chmod 644` included: the mode is part of what is watched) fails closed at once —
//! every API request answers 503 until it is fixed — because keeping the last good signers
//! could keep a withdrawn signer signing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::runtime::metrics::Metrics;
use crate::runtime::settle::{digest, stamp, Stamp, SETTLE};
use crate::signers::Signers;

/// The signers in force, and the file they come from.
pub struct SignersFile {
    path: PathBuf,
    allow_open: bool,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

type Read = Result<Arc<Signers>, String>;

struct State {
    /// The version of the file last looked at.
    seen: (Stamp, Option<Vec<u8>>),
    /// The signers in force.
    current: Read,
    /// What the file gives beyond them, waiting for the file to settle: the signers read and
    /// since when the file has been this version.
    waiting: Option<(Arc<Signers>, Instant)>,
}

impl SignersFile {
    /// Reads `path` now: a server does not start with a signers file it cannot use.
    pub fn open(path: PathBuf, allow_open: bool, metrics: Arc<Metrics>) -> Result<Self, String> {
        let seen = (stamp(&path), digest(&path));
        let signers = Self::read(&path, allow_open)?;
        Ok(Self {
            path,
            allow_open,
            metrics,
            state: Mutex::new(State {
                seen,
                current: Ok(signers),
                waiting: None,
            }),
        })
    }

    fn read(path: &std::path::Path, allow_open: bool) -> Read {
        let (signers, warning) = Signers::load(path, allow_open).map_err(|e| e.to_string())?;
        if let Some(warning) = warning {
            tracing::warn!(file = %path.display(), %warning, "signers file");
        }
        Ok(Arc::new(signers))
    }

    /// The signers in force, the file read again if it changed; why there are none usable.
    pub fn current(&self) -> Read {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&self.path);
        let changed = state.seen.0 != now;
        if changed || state.waiting.is_some() {
            // The bytes too: a rewrite that keeps the size and the time is a change.
            let seen = (now, digest(&self.path));
            if changed || seen != state.seen {
                self.changed(&mut state, seen);
            } else if let Some((new, since)) = &state.waiting {
                if since.elapsed() >= SETTLE {
                    tracing::info!(target: "ccs_endpoint::audit", event = "reload", component = "signers", file = %self.path.display(), signers = new.len(), "signers reloaded: the file settled, what it gives is in force");
                    state.current = Ok(Arc::clone(new));
                    state.waiting = None;
                }
            }
        }
        state.current.clone()
    }

    /// The file is now `seen`: its withdrawals apply at once, the rest waits to settle.
    fn changed(&self, state: &mut State, seen: (Stamp, Option<Vec<u8>>)) {
        state.seen = seen;
        state.waiting = None;
        let read = Self::read(&self.path, self.allow_open);
        self.metrics.api_signers(read.is_ok());
        let new = match read {
            Ok(new) => new,
            Err(error) => {
                tracing::error!(target: "ccs_endpoint::audit", event = "reload", component = "signers", %error, "the signers file cannot be used: every admin API request answers 503 until it is fixed");
                state.current = Err(error);
                return;
            }
        };
        let narrowed = match &state.current {
            Ok(old) => old.narrowed_by(&new),
            Err(_) => Signers::default(),
        };
        if narrowed.same_as(&new) {
            tracing::info!(target: "ccs_endpoint::audit", event = "reload", component = "signers", file = %self.path.display(), signers = new.len(), "signers reloaded");
            state.current = Ok(new);
            return;
        }
        // Quiet since its last write: a file last written 3 s ago has settled already.
        let age = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        if since.elapsed() >= SETTLE {
            tracing::info!(target: "ccs_endpoint::audit", event = "reload", component = "signers", file = %self.path.display(), signers = new.len(), "signers reloaded");
            state.current = Ok(new);
            return;
        }
        tracing::info!(target: "ccs_endpoint::audit", event = "reload", component = "signers", file = %self.path.display(), signers = narrowed.len(), "signers file changed: what it withdraws is in force now; what it gives once the file has settled");
        state.current = Ok(Arc::new(narrowed));
        state.waiting = Some((new, since));
    }
}
