//! Who else can read or write the key-store file.

use std::path::Path;

use super::KeyStoreError;

/// How the key-store file's permissions were judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permissions {
    /// Only the owner can read or write it.
    Private,
    /// Readable by the group (the usual shape of a Kubernetes Secret mounted with `fsGroup`):
    /// served, with a warning.
    GroupReadable(u32),
    /// Others can read it, or others or the group can write it: refused unless allowed.
    Open(u32),
}

impl Permissions {
    /// Reads the mode of the file (following symbolic links, as mounted Secrets use).
    #[cfg(unix)]
    pub fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok(if mode & 0o027 != 0 {
            Permissions::Open(mode)
        } else if mode & 0o070 != 0 {
            Permissions::GroupReadable(mode)
        } else {
            Permissions::Private
        })
    }

    /// Permissions are not judged on systems without Unix modes.
    #[cfg(not(unix))]
    pub fn of(_path: &Path) -> std::io::Result<Self> {
        Ok(Permissions::Private)
    }

    /// A warning to log, or an error when the key store is open and that is not allowed.
    pub fn verdict(&self, path: &Path, allow_open: bool) -> Result<Option<String>, KeyStoreError> {
        self.judge("key store", "the secrets", path, allow_open)
            .map_err(|message| KeyStoreError::Permissions {
                path: path.to_owned(),
                message,
            })
    }

    /// The verdict for a file of kind `what` (e.g. "PIN file") that holds `holds`: a warning to
    /// log, or the reason to refuse it when it is open and `allow_open` is not set.
    pub fn judge(
        &self,
        what: &str,
        holds: &str,
        path: &Path,
        allow_open: bool,
    ) -> Result<Option<String>, String> {
        match *self {
            Permissions::Private => Ok(None),
            Permissions::GroupReadable(mode) => Ok(Some(format!(
                "{what} {} is readable by its group (mode {mode:03o}); every member of the group can read {holds}: prefer chmod 600",
                path.display()
            ))),
            Permissions::Open(mode) if allow_open => Ok(Some(format!(
                "{what} {} is accessible to others or writable by its group (mode {mode:03o}), used only because allow_insecure_permissions = true: chmod 600 it",
                path.display()
            ))),
            Permissions::Open(mode) => Err(format!(
                "refusing a {what} that others can access or its group can write (mode {mode:03o}): run `chmod 600 {}`, or set [keys] allow_insecure_permissions = true to use it anyway",
                path.display()
            )),
        }
    }
}
