//! Versions of files, told apart without reading them, and waiting until files have stopped
//! changing, so that a slow, non-atomic rewrite is never loaded half-written.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A changed file is loaded once it has not changed for this long...
const SETTLE: Duration = Duration::from_millis(500);
/// ...checked this often...
const SETTLE_STEP: Duration = Duration::from_millis(100);
/// ...but a file that keeps changing is loaded after this anyway (and judged as it is).
const SETTLE_MAX: Duration = Duration::from_secs(10);

/// What identifies a version of a file without reading it: device, inode, size, mtime.
pub(crate) type Stamp = Option<(u64, u64, u64, i64, i64)>;

pub(crate) fn stamp(path: &Path) -> Stamp {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .unwrap_or_default();
            (
                0,
                0,
                m.len(),
                modified.as_secs() as i64,
                i64::from(modified.subsec_nanos()),
            )
        })
    }
}

/// Waits until none of `files` has changed for [`SETTLE`] (at most [`SETTLE_MAX`]); returns
/// their stamps then.
pub(super) fn settle(files: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
    let read =
        || -> Vec<(PathBuf, Stamp)> { files.iter().map(|f| (f.clone(), stamp(f))).collect() };
    let started = std::time::Instant::now();
    let mut last = read();
    let mut quiet_since = std::time::Instant::now();
    while quiet_since.elapsed() < SETTLE {
        if started.elapsed() >= SETTLE_MAX {
            tracing::warn!(files = ?files, "files still changing after {SETTLE_MAX:?}; loading them as they are");
            break;
        }
        std::thread::sleep(SETTLE_STEP);
        let now = read();
        if now != last {
            last = now;
            quiet_since = std::time::Instant::now();
        }
    }
    last
}
