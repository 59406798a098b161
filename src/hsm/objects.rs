//! The token objects the server uses: found by label, checked before they are served, listed
//! for `keys list`. `CKA_VALUE` is never read.

use std::sync::PoisonError;

use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{Hsm, HsmError};
use crate::secret::Kcv;
use crate::wrap::Plaintext;

impl Hsm {
    /// The secret-key objects with this label (and this KCV as `CKA_ID`, when given).
    pub(super) fn find(session: &Session, label: &str, kcv: Option<Kcv>) -> Result<Found, CkError> {
        let mut template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        if let Some(kcv) = kcv {
            template.push(Attribute::Id(kcv.as_bytes().to_vec()));
        }
        Ok(match session.find_objects(&template)?.as_slice() {
            [] => Found::None,
            [one] => Found::One(*one),
            many => Found::Many(many.len()),
        })
    }

    /// `check_object`, once per label and KCV for the life of the process.
    pub fn verify_object(&self, label: &str, kcv: Kcv) -> Result<(), HsmError> {
        let key = (label.to_owned(), kcv);
        let lock = || self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if lock().contains(&key) {
            return Ok(());
        }
        self.check_object(label, kcv)?;
        lock().insert(key);
        Ok(())
    }

    /// What the server checks of an object before serving it: it exists, is sensitive and
    /// extractable (so the token will wrap it but never reveal it), holds a value of the length
    /// the `[wrap] plaintext` needs, and its `CKA_ID` is the entry's KCV.
    pub fn check_object(&self, label: &str, kcv: Kcv) -> Result<(), HsmError> {
        let object = |message: String| HsmError::Object {
            label: label.to_owned(),
            message,
        };
        let facts = match self.run(|session| match Self::find(session, label, None)? {
            Found::One(key) => read_facts(session, key).map(Found::One),
            Found::None => Ok(Found::None),
            Found::Many(n) => Ok(Found::Many(n)),
        })? {
            Found::One(facts) => facts,
            Found::None => return Err(HsmError::NoObject(label.to_owned())),
            Found::Many(n) => return Err(ambiguous(label, n)),
        };
        if facts.sensitive != Some(true) {
            return Err(object(
                "is not sensitive (CKA_SENSITIVE is not true), so its value could be read out of the token: re-create it with `ccs-endpoint keys import`".into(),
            ));
        }
        if facts.extractable != Some(true) {
            return Err(object(
                "is not extractable (CKA_EXTRACTABLE is false), so the token refuses to wrap it"
                    .into(),
            ));
        }
        let want = value_len(self.wrap.plaintext);
        if facts.value_len != Some(want) {
            return Err(object(format!(
                "holds {} bytes but [wrap] plaintext = {:?} needs {want}: import the key again under this setting",
                facts
                    .value_len
                    .map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string()),
                self.wrap.plaintext.name()
            )));
        }
        if facts.id.as_deref() != Some(kcv.as_bytes().as_slice()) {
            return Err(object(format!(
                "its CKA_ID is {}, not the KCV {kcv} the key store names: the token holds another key under this label",
                facts
                    .id
                    .as_ref()
                    .map_or_else(|| "absent".to_owned(), |id| format!("{:?}", hex::encode_upper(id))),
            )));
        }
        Ok(())
    }

    /// Every secret-key object in the token whose label starts with `prefix`: label, whether
    /// sensitive, the KCV in its `CKA_ID`.
    pub fn objects(&self, prefix: &str) -> Result<Vec<TokenObject>, HsmError> {
        self.run(|session| {
            let handles = session.find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Token(true),
            ])?;
            let mut objects = Vec::new();
            for handle in handles {
                let facts = read_facts(session, handle)?;
                let kcv = facts.kcv();
                if let Some(label) = facts.label.filter(|l| l.starts_with(prefix)) {
                    objects.push(TokenObject {
                        label,
                        sensitive: facts.sensitive == Some(true),
                        kcv,
                    });
                }
            }
            objects.sort_by(|a, b| a.label.cmp(&b.label));
            Ok(objects)
        })
    }
}

/// What a label search found.
pub(super) enum Found<T = ObjectHandle> {
    None,
    One(T),
    Many(usize),
}

pub(super) fn ambiguous(label: &str, n: usize) -> HsmError {
    HsmError::Object {
        label: label.to_owned(),
        message: format!(
            "{n} objects carry this label: the token must hold exactly one (remove the others, e.g. with pkcs11-tool --delete-object)"
        ),
    }
}

/// An object `keys list` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenObject {
    pub label: String,
    pub sensitive: bool,
    /// The KCV its `CKA_ID` carries, if it is 3 bytes.
    pub kcv: Option<String>,
}

/// The attributes the server reads. `CKA_VALUE` is not among them, and never will be.
pub(super) struct Facts {
    pub(super) label: Option<String>,
    pub(super) sensitive: Option<bool>,
    pub(super) extractable: Option<bool>,
    pub(super) value_len: Option<u64>,
    pub(super) id: Option<Vec<u8>>,
}

impl Facts {
    /// The KCV `CKA_ID` carries, when it is 3 bytes.
    pub(super) fn kcv(&self) -> Option<String> {
        let id: &[u8; 3] = self.id.as_deref()?.try_into().ok()?;
        Some(hex::encode_upper(id))
    }
}

pub(super) fn read_facts(session: &Session, handle: ObjectHandle) -> Result<Facts, CkError> {
    let mut facts = Facts {
        label: None,
        sensitive: None,
        extractable: None,
        value_len: None,
        id: None,
    };
    let attributes = session.get_attributes(
        handle,
        &[
            AttributeType::Label,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::ValueLen,
            AttributeType::Id,
        ],
    )?;
    for attribute in attributes {
        match attribute {
            Attribute::Label(bytes) => facts.label = String::from_utf8(bytes).ok(),
            Attribute::Sensitive(b) => facts.sensitive = Some(b),
            Attribute::Extractable(b) => facts.extractable = Some(b),
            Attribute::ValueLen(n) => facts.value_len = Some(u64::from(n)),
            Attribute::Id(id) => facts.id = Some(id),
            _ => {}
        }
    }
    Ok(facts)
}

fn value_len(plaintext: Plaintext) -> u64 {
    match plaintext {
        Plaintext::Hex => 64,
        Plaintext::Raw => 32,
    }
}
