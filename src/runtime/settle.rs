//! Versions of files, told apart without reading them, and waiting until files have stopped
//! changing, so that a slow, non-atomic rewrite is never loaded half-written: a file loads
//! once it has stayed the same — its metadata and its bytes, read again at every step — for
//! [`SETTLE`]. What a change withdraws is applied before that (`reload`): kill wins at once,
//! un-kill settles (contract §7).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A changed file is loaded once it has not changed for this long...
pub(crate) const SETTLE: Duration = Duration::from_secs(3);
/// ...checked this often...
const SETTLE_STEP: Duration = Duration::from_millis(100);
/// ...but a file that keeps changing is loaded after this anyway (and judged as it is).
const SETTLE_MAX: Duration = Duration::from_secs(10);

/// What identifies a version of a file without reading it: device, inode, size, mtime, and
/// its mode and owner (a `chmod 644` is a change to judge, as the loader judges permissions).
pub(crate) type Stamp = Option<(u64, u64, u64, i64, i64, u32, u32)>;

pub(crate) fn stamp(path: &Path) -> Stamp {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| {
            (
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.mode(),
                m.uid(),
            )
        })
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
                0,
                0,
            )
        })
    }
}

/// The SHA-256 of a file's bytes (which are wiped once hashed: a key store holds secrets).
pub(crate) fn digest(path: &Path) -> Option<Vec<u8>> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).ok()?);
    Some(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes)
            .as_ref()
            .to_vec(),
    )
}

/// Waits until none of `files` has changed — metadata or bytes — for `quiet` (at most
/// [`SETTLE_MAX`]); returns their stamps then.
pub(super) fn settle(files: &[PathBuf], quiet: Duration) -> Vec<(PathBuf, Stamp)> {
    let read = || -> Vec<(PathBuf, Stamp, Option<Vec<u8>>)> {
        files
            .iter()
            .map(|f| (f.clone(), stamp(f), digest(f)))
            .collect()
    };
    let started = std::time::Instant::now();
    let mut last = read();
    let mut quiet_since = std::time::Instant::now();
    while quiet_since.elapsed() < quiet {
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
    last.into_iter().map(|(f, s, _)| (f, s)).collect()
}
