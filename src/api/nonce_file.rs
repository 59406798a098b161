//! A single node's one-time nonces, kept across restarts (contract §9): `api-nonces.tsv`
//! beside the key store, one `until<TAB>key id<TAB>nonce` line per nonce taken, appended and
//! synced before the request is served, read back at start-up (what is past its window is
//! dropped, and the file rewritten without it). So a request captured before a restart is
//! refused after it, as before it. A nonce that cannot be written is not taken: the request
//! answers 503 rather than be replayable later.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::httpsig::{NonceCache, Refusal};

/// The file's name, in the key store's directory.
pub const FILE_NAME: &str = "api-nonces.tsv";

/// Lines appended before the file is rewritten with the live nonces only.
const COMPACT_AFTER: usize = 10_000;

/// The nonces in memory, and the file that outlives the process.
pub struct NonceFile {
    cache: NonceCache,
    path: PathBuf,
    file: Mutex<Option<(File, usize)>>,
    capacity: usize,
}

/// Why a nonce was not taken.
#[derive(Debug)]
pub enum NonceError {
    /// 401: a replay, or too many in the window.
    Refused(Refusal),
    /// 503: it could not be kept.
    Unavailable(String),
}

impl NonceFile {
    /// The nonces beside `key_store`, those still in their window at `now` read back.
    pub fn beside(key_store: &Path, capacity: usize, now: i64) -> Self {
        let dir = key_store.parent().unwrap_or(Path::new("."));
        let path = dir.join(FILE_NAME);
        let cache = NonceCache::new(capacity);
        let live = read_live(&path, now);
        for (until, keyid, nonce) in &live {
            // Recorded as seen until `until` (created + skew with a skew of 0).
            let _ = cache.take(keyid, nonce, *until, now, 0);
        }
        let file = match rewrite(&path, &live) {
            Ok(file) => Some((file, live.len())),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "the admin API's nonce file cannot be written: signed requests answer 503 until it can be");
                None
            }
        };
        Self {
            cache,
            path,
            file: Mutex::new(file),
            capacity,
        }
    }

    /// Takes `nonce` of `keyid` (see [`NonceCache::take`]), kept in the file before it counts.
    pub fn take(
        &self,
        keyid: &str,
        nonce: &str,
        created: i64,
        now: i64,
        skew: i64,
    ) -> Result<(), NonceError> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // A directory made writable since (a read-only one fixed) is taken up without a restart.
        if file.is_none() {
            let live = read_live(&self.path, now);
            if let Ok(reopened) = rewrite(&self.path, &live) {
                tracing::info!(file = %self.path.display(), "the admin API's nonce file can be written again");
                *file = Some((reopened, live.len()));
            }
        }
        let Some((handle, lines)) = file.as_mut() else {
            return Err(NonceError::Unavailable(format!(
                "the admin API cannot keep nonces in {}, so a signed request could be replayed after a restart: make the key store's directory writable by the service",
                self.path.display()
            )));
        };
        self.cache
            .take(keyid, nonce, created, now, skew)
            .map_err(NonceError::Refused)?;
        let until = created.saturating_add(skew);
        let written = handle
            .write_all(format!("{until}\t{keyid}\t{nonce}\n").as_bytes())
            .and_then(|()| handle.sync_data());
        if let Err(e) = written {
            return Err(NonceError::Unavailable(format!(
                "the nonce could not be kept in {} ({e}): the request is not served",
                self.path.display()
            )));
        }
        *lines += 1;
        // Compacted under the lock, so that no nonce is appended to the file being replaced.
        if *lines > COMPACT_AFTER.max(self.capacity) {
            let live = read_live(&self.path, now);
            match rewrite(&self.path, &live) {
                Ok(compacted) => *file = Some((compacted, live.len())),
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "the admin API's nonce file could not be compacted");
                }
            }
        }
        Ok(())
    }
}

/// The nonces of the file at `path` still in their window at `now`: (until, key id, nonce).
fn read_live(path: &Path, now: i64) -> Vec<(i64, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let until = fields.next()?.parse::<i64>().ok()?;
            Some((until, fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .filter(|(until, _, _)| *until >= now)
        .collect()
}

/// Writes `live` to `path` (a temporary file, synced, renamed into place) and opens it for
/// appending.
fn rewrite(path: &Path, live: &[(i64, String, String)]) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    for (until, keyid, nonce) in live {
        text.push_str(&format!("{until}\t{keyid}\t{nonce}\n"));
    }
    let tmp = path.with_extension("tsv.tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    OpenOptions::new().append(true).open(path)
}
