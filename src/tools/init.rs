//! `init`: a production-shaped skeleton — commented configuration, an empty key store with the
//! right permissions, and `certs/README.md` — and the next steps.

use std::path::{Path, PathBuf};

const CONFIG: &str = include_str!("../../config/ccs-endpoint.toml");
const KEYS_EXAMPLE: &str = include_str!("../../config/keys.example.toml");
const CERTS_README: &str = include_str!("../../certs/README.md");
const KEYS: &str = "# ccs-endpoint key store: mode 600, never in version control.\n\
# Add keys with `ccs-endpoint keys generate --instance <name> --key-id 1 --file config/keys.toml`.\n\
# The fields are described in keys.example.toml beside this file.\n";

/// Why the skeleton was not written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} exists already; init never overwrites (remove it or pick another --dir)")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes the skeleton under `dir`; returns the files written.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>, InitError> {
    let files = [
        (dir.join("config/ccs-endpoint.toml"), CONFIG, false),
        (dir.join("config/keys.example.toml"), KEYS_EXAMPLE, false),
        (dir.join("config/keys.toml"), KEYS, true),
        (dir.join("certs/README.md"), CERTS_README, false),
    ];
    if let Some((existing, _, _)) = files.iter().find(|(p, _, _)| p.exists()) {
        return Err(InitError::Exists(existing.clone()));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| InitError::Io { path, source }
    };
    for (path, text, private) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        if *private {
            crate::tools::keyfile::write_atomically(path, text.as_bytes()).map_err(io(path))?;
        } else {
            std::fs::write(path, text).map_err(io(path))?;
        }
    }
    Ok(files.into_iter().map(|(p, _, _)| p).collect())
}

/// What to do after `init`.
pub fn next_steps(dir: &Path) -> String {
    let d = dir.display();
    let me = super::invoked_as();
    format!(
        "Next steps:\n\
         1. Put the server certificate chain and key, and the SaaS's two roots, in {d}/certs/\n   (see {d}/certs/README.md).\n\
         2. Generate a key for each instance (printed by KCV only):\n   {me} keys generate --instance <name> --key-id 1 --file {d}/config/keys.toml\n\
         3. Validate everything:\n   {me} check --config {d}/config/ccs-endpoint.toml\n\
         4. Serve, then poll it as the SaaS would:\n   {me} serve --config {d}/config/ccs-endpoint.toml\n   {me} probe https://<host>:8443/kek/<name>/1 --cert db.crt --key db.key\n"
    )
}
