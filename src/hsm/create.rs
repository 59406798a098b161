//! Operator-side token work (`keys generate` and `keys import`): creating sensitive objects and
//! drawing random secrets. The server itself never creates anything in the token.

use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::Session;
use zeroize::{Zeroize, Zeroizing};

use super::objects::{ambiguous, read_facts, Found, TokenObject};
use super::pool::describe;
use super::{Hsm, HsmError};
use crate::secret::Secret;
use crate::wrap::Plaintext;

impl Hsm {
    /// Creates a token object for `secret` under `label` (sensitive, extractable, private, usable
    /// for nothing but being wrapped), holding the value `plaintext` calls for; `CKA_ID` is the
    /// KCV. An existing object with the label is replaced only when `replace` is set. The new
    /// object is read back and destroyed unless the token kept it sensitive.
    pub fn create(
        &self,
        label: &str,
        secret: &Secret,
        replace: bool,
    ) -> Result<Option<TokenObject>, HsmError> {
        let session = self.open_rw()?;
        self.create_in(&session, label, secret, replace)
    }

    /// A logged-in read-write session, outside the pool (operator commands only).
    fn open_rw(&self) -> Result<Session, HsmError> {
        let lease = self.checkout()?;
        let slot = self
            .conn()
            .slot
            .ok_or_else(|| HsmError::Token("the token connection was reset; try again".into()))?;
        let session = self.pkcs11.open_rw_session(slot).map_err(|e| {
            HsmError::Token(format!("opening a read-write session: {}", describe(&e)))
        })?;
        self.login(&session)?;
        drop(lease);
        Ok(session)
    }

    fn create_in(
        &self,
        session: &Session,
        label: &str,
        secret: &Secret,
        replace: bool,
    ) -> Result<Option<TokenObject>, HsmError> {
        let token = |e: CkError| HsmError::Token(describe(&e));
        let object = |message: String| HsmError::Object {
            label: label.to_owned(),
            message,
        };
        let existing = Self::find(session, label, None).map_err(token)?;
        let old = match existing {
            Found::Many(n) => return Err(ambiguous(label, n)),
            Found::One(handle) => {
                let facts = read_facts(session, handle).map_err(token)?;
                if !replace {
                    return Err(object(
                        "already exists in the token: replacing a live key makes the database's data unreadable; pass --force --confirm-kcv <its KCV> (`keys list`) if that is really meant".into(),
                    ));
                }
                Some((handle, facts))
            }
            Found::None => None,
        };
        let kcv = secret.kcv();
        let mut value: Zeroizing<Vec<u8>> = Zeroizing::new(match self.wrap.plaintext {
            Plaintext::Hex => secret.to_hex().to_vec(),
            Plaintext::Raw => secret.expose().to_vec(),
        });
        let mut template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(kcv.as_bytes().to_vec()),
            Attribute::Value(std::mem::take(&mut *value)),
        ];
        let created = session.create_object(&template);
        for attribute in &mut template {
            if let Attribute::Value(bytes) = attribute {
                bytes.zeroize();
            }
        }
        let handle = created.map_err(token)?;
        let facts = read_facts(session, handle).map_err(token)?;
        if facts.sensitive != Some(true) || facts.extractable != Some(true) {
            let _ = session.destroy_object(handle);
            return Err(object(
                "the token did not keep the new object sensitive and extractable; it was destroyed again, and nothing was changed".into(),
            ));
        }
        let replaced = match old {
            Some((handle, facts)) => {
                session.destroy_object(handle).map_err(token)?;
                Some(TokenObject {
                    label: label.to_owned(),
                    sensitive: facts.sensitive == Some(true),
                    kcv: facts.kcv(),
                })
            }
            None => None,
        };
        Ok(replaced)
    }

    /// 32 bytes from the token's own random generator.
    pub fn random_secret(&self) -> Result<Secret, HsmError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        self.run(|session| session.generate_random_slice(bytes.as_mut_slice()))?;
        Secret::from_bytes(bytes).map_err(|e| HsmError::Token(e.to_string()))
    }
}
