//! Reading `signers.toml`: each `[[signer]]` judged field by field, an error naming the file,
//! the entry and the field, and never a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{valid_key_id, Action, Signer, Signers, SignersError, MIN_SECRET_BYTES};
use crate::httpsig::Algorithm;
use crate::keystore::parse_time;
use crate::secret_file;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    signer: Vec<toml::Table>,
}

impl Signers {
    /// Parses signers text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, SignersError> {
        let raw: RawFile = secret_file::toml(text).map_err(|e| SignersError::File {
            path: path.to_owned(),
            message: format!("not a signers file: {e}"),
        })?;
        let mut by_id = BTreeMap::new();
        for (i, table) in raw.signer.into_iter().enumerate() {
            let label = match table.get("key_id").and_then(toml::Value::as_str) {
                Some(id) if valid_key_id(id) => format!(" (key_id {id:?})"),
                _ => String::new(),
            };
            let error = |field: &'static str, message: String| SignersError::Entry {
                path: path.to_owned(),
                entry: i + 1,
                label: label.clone(),
                field,
                message,
            };
            let string = |field: &'static str| match table.get(field) {
                Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(error(field, "must be a string".into())),
                None => Ok(None),
            };
            let required =
                |field: &'static str| string(field)?.ok_or_else(|| error(field, "missing".into()));
            if let Some(unknown) = table.keys().find(|k| {
                ![
                    "key_id",
                    "secret",
                    "algorithm",
                    "actions",
                    "expires",
                    "active",
                ]
                .contains(&k.as_str())
            }) {
                return Err(error("signer", format!("unknown field `{unknown}`")));
            }
            let key_id = required("key_id")?;
            if !valid_key_id(key_id) {
                return Err(error(
                    "key_id",
                    "must be 1 to 64 letters, digits, '.', '_' or '-'".into(),
                ));
            }
            let secret = Zeroizing::new(BASE64.decode(required("secret")?.trim()).map_err(|_| {
                error(
                    "secret",
                    "is not base64 (standard alphabet, with padding); `ccs-endpoint signers add` makes one".into(),
                )
            })?);
            if secret.len() < MIN_SECRET_BYTES {
                return Err(error(
                    "secret",
                    format!(
                        "is {} bytes; a signer's secret must be at least {MIN_SECRET_BYTES} random bytes",
                        secret.len()
                    ),
                ));
            }
            let algorithm = match required("algorithm")? {
                "hmac-sha256" => Algorithm::HmacSha256,
                "hmac-sha384" => Algorithm::HmacSha384,
                "hmac-sha512" => Algorithm::HmacSha512,
                other => {
                    return Err(error(
                        "algorithm",
                        format!("{other:?} is not hmac-sha256, hmac-sha384 or hmac-sha512"),
                    ))
                }
            };
            let actions = match table.get("actions") {
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        let name = item.as_str().unwrap_or_default();
                        Action::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| {
                            error(
                                "actions",
                                format!("{item} is not an action (status, disable, enable, shutdown, renew, export)"),
                            )
                        })
                    })
                    .collect::<Result<BTreeSet<Action>, _>>()?,
                Some(_) => return Err(error("actions", "must be a list".into())),
                None => return Err(error("actions", "missing".into())),
            };
            if actions.is_empty() {
                return Err(error(
                    "actions",
                    "is empty: this signer could do nothing".into(),
                ));
            }
            let expires = string("expires")?
                .map(parse_time)
                .transpose()
                .map_err(|e| error("expires", e))?;
            let active = match table.get("active") {
                None => true,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err(error("active", "must be true or false".into())),
            };
            let key_id = key_id.to_owned();
            let signer = Signer {
                key_id: key_id.clone(),
                secret,
                algorithm,
                actions,
                expires,
                active,
            };
            if by_id.insert(key_id, signer).is_some() {
                return Err(error(
                    "key_id",
                    "duplicate: another entry has this key id".into(),
                ));
            }
        }
        Ok(Self { by_id })
    }
}
