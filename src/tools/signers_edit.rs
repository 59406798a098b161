//! `signers add`: a new signer with a secret from the CSPRNG, appended to the signers file
//! (created mode 600, written atomically, comments kept), the secret returned to be shown once.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use time::OffsetDateTime;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};
use zeroize::Zeroizing;

use crate::httpsig::Algorithm;
use crate::protocol::format_timestamp;
use crate::secret_file;
use crate::signers::{valid_key_id, Action, Signers, MIN_SECRET_BYTES};
use crate::tools::keyfile::write_atomically;

/// The new signer's fields.
pub struct NewSigner<'a> {
    pub key_id: &'a str,
    pub algorithm: Algorithm,
    pub actions: &'a [Action],
    pub expires: Option<OffsetDateTime>,
}

const HEADER: &str = "# ccs-endpoint signers: keep it mode 600 and out of version control.\n\
# Each [[signer]] may sign admin API requests (contract §9); `ccs-endpoint signers add` adds one.\n";

/// Adds `signer` to the file at `path` (created if absent); the secret, base64, to show once.
pub fn add(path: &Path, signer: &NewSigner<'_>) -> Result<Zeroizing<String>, String> {
    if !valid_key_id(signer.key_id) {
        return Err(format!(
            "key id {:?} must be 1 to 64 letters, digits, '.', '_' or '-'",
            signer.key_id
        ));
    }
    if signer.actions.is_empty() {
        return Err("give at least one action".into());
    }
    let text = secret_file::read_or(path, HEADER)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let existing = Signers::parse(path, &text).map_err(|e| e.to_string())?;
    if existing.signer_ids().any(|id| id == signer.key_id) {
        return Err(format!(
            "{}: key id {:?} exists already: pick another (retire the old one with active = false)",
            path.display(),
            signer.key_id
        ));
    }
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|_| format!("{}: not TOML", path.display()))?;
    let mut secret = Zeroizing::new(vec![0u8; MIN_SECRET_BYTES]);
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "the CSPRNG failed".to_owned())?;
    let encoded = Zeroizing::new(BASE64.encode(&*secret));
    let mut table = Table::new();
    table["key_id"] = value(signer.key_id);
    table["secret"] = value(encoded.as_str());
    table["algorithm"] = value(signer.algorithm.name());
    let mut actions = Array::new();
    for action in signer.actions {
        actions.push(action.name());
    }
    table["actions"] = value(actions);
    if let Some(expires) = signer.expires {
        table["expires"] = value(format_timestamp(expires));
    }
    match doc.get_mut("signer") {
        Some(Item::ArrayOfTables(signers)) => signers.push(table),
        Some(_) => {
            return Err(format!(
                "{}: `signer` is not a list of tables",
                path.display()
            ))
        }
        None => {
            let mut signers = ArrayOfTables::new();
            signers.push(table);
            doc.insert("signer", Item::ArrayOfTables(signers));
        }
    }
    let new = Zeroizing::new(doc.to_string());
    Signers::parse(path, &new).map_err(|e| e.to_string())?;
    write_atomically(path, new.as_bytes())
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    Ok(encoded)
}
