//! The files that hold secrets — the key store, the signers, the PKCS#11 PIN, the database URL,
//! a client's signing secret — are read one way: their permissions judged before anything is
//! used (`permissions.rs`), their text held in memory that is wiped when dropped, and a TOML
//! error told by its line and message alone. toml's own `Display` quotes the offending line,
//! which may hold a secret; nothing here ever shows a byte of the file.

use std::fmt;
use std::io;
use std::path::Path;

use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::permissions::Permissions;

/// A file of `kind` (`"key store"`, `"signers file"`, `"PIN file"`) that holds `holds` (said in
/// the permission warnings: "every member of the group can read the PIN").
#[derive(Debug, Clone, Copy)]
pub struct SecretFile<'a> {
    pub path: &'a Path,
    pub kind: &'static str,
    pub holds: &'static str,
}

/// Why a file holding secrets was not used. Says nothing of its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read: {0}")]
    Read(#[source] io::Error),
    /// Others may read it, or another user may replace it (the message says how to fix it).
    #[error("{0}")]
    Permissions(String),
}

impl SecretFile<'_> {
    /// Judges who else may read or replace the file: a warning to log, or why it is refused
    /// (unless `allow_open`, with a warning).
    pub fn judge(&self, allow_open: bool) -> Result<Option<String>, SecretFileError> {
        Permissions::of(self.path)
            .map_err(SecretFileError::Read)?
            .judge(self.kind, self.holds, self.path, allow_open)
            .map_err(SecretFileError::Permissions)
    }

    /// Judges the file, then reads it: its text and the warning to log.
    pub fn read_judged(
        &self,
        allow_open: bool,
    ) -> Result<(Zeroizing<String>, Option<String>), SecretFileError> {
        let warning = self.judge(allow_open)?;
        let text = read(self.path).map_err(SecretFileError::Read)?;
        Ok((text, warning))
    }
}

/// The text of `path`, wiped when dropped.
pub fn read(path: &Path) -> io::Result<Zeroizing<String>> {
    std::fs::read_to_string(path).map(Zeroizing::new)
}

/// The text of `path`, or `absent` when there is no such file yet (a file about to be made).
pub fn read_or(path: &Path, absent: &str) -> io::Result<Zeroizing<String>> {
    match read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Zeroizing::new(absent.to_owned())),
        read => read,
    }
}

/// A TOML document that does not parse: where and why, never the line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    /// 1-based; 0 when the parser gave no position.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses `text` as TOML into `T`; an error holds only the line and the parser's message.
pub fn toml<T: DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    toml::from_str(text).map_err(|e: toml::de::Error| TomlError {
        line: e.span().map_or(0, |span| {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            1 + before.iter().filter(|&&b| b == b'\n').count()
        }),
        message: e.message().trim_end().to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_error_names_the_line_and_never_quotes_it() {
        let text = "[[key]]\nsecret = \"c0ffee-not-closed\n";
        let e = toml::<toml::Table>(text).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(!e.to_string().contains("c0ffee"), "{e}");
        assert!(!e.message.is_empty());
    }

    #[test]
    fn an_absent_file_reads_as_what_it_would_start_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        assert_eq!(read_or(&path, "# new\n").unwrap().as_str(), "# new\n");
        std::fs::write(&path, "x = 1\n").unwrap();
        assert_eq!(read_or(&path, "# new\n").unwrap().as_str(), "x = 1\n");
    }
}
