//! A PKCS#11 token (an HSM, or SoftHSM2 for evaluation) holding secret-key objects it wraps
//! but never reveals.
//!
//! The token wraps the key itself: `C_WrapKey` with `CKM_RSA_PKCS_OAEP` under the database
//! certificate's public key, imported for the call as a session object. The server never reads a
//! key's value; the objects are created sensitive, and no code here asks for `CKA_VALUE`
//! (`tests/hsm.rs` checks both).
//!
//! This is a driver: it knows objects by label and by the 3-byte KCV in their `CKA_ID`, and
//! nothing of key stores (the label scheme and the key states are `keystore`'s, so the kill
//! switches never need the token).
//!
//! Calls block, so the server makes them off its async workers. Sessions are pooled; a closed
//! session is replaced, a logged-out token is logged in again, and a device error drops every
//! session so that the next call reconnects (re-initialising the library when the token has
//! kept failing for `reinitialize_after`), so service resumes once the token is back, without
//! a restart.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use cryptoki::context::Pkcs11;
use cryptoki::error::Error as CkError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::config::{Pkcs11Config, TokenSelector};
use crate::secret::Kcv;
use crate::wrap::{Padding, RsaPublic, WrapOptions};

mod create;
mod objects;
mod pin;
mod pool;

pub use objects::TokenObject;
use objects::{ambiguous, Found};
pub use pin::pin_file_verdict;
use pin::read_pin;
use pool::Conn;

/// How long a call waits for one of the `sessions` to be free.
const SESSION_WAIT: Duration = Duration::from_secs(5);

/// How long a health result is reused, so that a flood of `/readyz` cannot flood the token.
const HEALTH_TTL: Duration = Duration::from_secs(2);

/// Why the token could not do what was asked. Never carries a PIN or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HsmError {
    #[error("PKCS#11 module {module}: {message}")]
    Setup { module: String, message: String },
    #[error("{0}")]
    Token(String),
    #[error("no object labelled {0:?} in the token")]
    NoObject(String),
    #[error("object {label:?}: {message}")]
    Object { label: String, message: String },
    #[error("the token refused the mechanism: {0}")]
    Mechanism(String),
    #[error("{0}")]
    PinFile(String),
}

/// The token, its library and a pool of logged-in sessions.
pub struct Hsm {
    config: Pkcs11Config,
    pkcs11: Pkcs11,
    pin: AuthPin,
    wrap: WrapOptions,
    conn: Mutex<Conn>,
    /// Signalled when a lease ends.
    freed: Condvar,
    /// Every call holds it shared; a reset holds it exclusively, so `C_Finalize` never runs
    /// under a call in flight.
    calls: RwLock<()>,
    /// Objects that passed `check_object`, by label and KCV.
    verified: Mutex<HashSet<(String, Kcv)>>,
    /// A key pair made at start-up, only to check that the token really wraps.
    probe: OaepPrivateDecryptingKey,
    probe_public: RsaPublic,
    health: Mutex<Option<(Instant, Result<(), HsmError>)>>,
}

impl fmt::Debug for Hsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hsm")
            .field("module", &self.config.module)
            .field("token", &self.config.token)
            .field("pin", &"redacted")
            .finish()
    }
}

impl Hsm {
    /// Loads the module, reads the PIN, finds the token, logs in and checks with a real wrap
    /// that the token does the configured RSA-OAEP. Every failure says what to fix.
    pub fn open(config: &Pkcs11Config, wrap: WrapOptions) -> Result<Self, HsmError> {
        let setup = |message: String| HsmError::Setup {
            module: config.module.display().to_string(),
            message,
        };
        let pin = read_pin(&config.pin).map_err(setup)?;
        if !config.module.exists() {
            return Err(setup(
                "no such file: install the vendor's PKCS#11 library (SoftHSM2: apt-get install softhsm2) or fix keys.pkcs11.module".into(),
            ));
        }
        let pkcs11 = Pkcs11::new(&config.module)
            .map_err(|e| setup(format!("cannot be loaded as a PKCS#11 library: {e}")))?;
        let probe = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(|_| setup("generating the start-up check key failed".into()))?;
        let spki: PublicKeyX509Der<'static> = probe
            .public_key()
            .as_der()
            .map_err(|_| setup("encoding the start-up check key failed".into()))?;
        let probe_public = RsaPublic::from_spki_der(spki.as_ref())
            .ok_or_else(|| setup("reading the start-up check key failed".into()))?;
        let probe = OaepPrivateDecryptingKey::new(probe)
            .map_err(|_| setup("preparing the start-up check key failed".into()))?;
        let hsm = Self {
            config: config.clone(),
            pkcs11,
            pin,
            wrap,
            conn: Mutex::new(Conn::new()),
            freed: Condvar::new(),
            calls: RwLock::new(()),
            verified: Mutex::new(HashSet::new()),
            probe,
            probe_public,
            health: Mutex::new(None),
        };
        // Connect here so that a wrong PIN or a missing token stops start-up with its own
        // message, then prove the configured padding with a real wrap.
        drop(hsm.checkout()?);
        hsm.self_test().map_err(|e| match e {
            HsmError::Mechanism(message) => setup(format!(
                "{} does not wrap with RSA-OAEP {} ({message}): {}",
                hsm.token_name(),
                wrap.padding.hashes(),
                match wrap.padding {
                    Padding::OaepSha256 => "set [wrap] padding = \"oaep-sha1\" (what the SaaS expects by default) or use a token that supports it",
                    Padding::OaepSha1 => "use a token that supports CKM_RSA_PKCS_OAEP for C_WrapKey",
                }
            )),
            other => setup(format!("the start-up check wrap failed: {other}")),
        })?;
        Ok(hsm)
    }

    /// The PKCS#11 library.
    pub fn module(&self) -> &Path {
        &self.config.module
    }

    /// The token as configured, for messages.
    pub fn token_name(&self) -> String {
        match &self.config.token {
            TokenSelector::Label(label) => format!("token {label:?}"),
            TokenSelector::Slot(slot) => format!("slot {slot}"),
        }
    }

    /// Wraps the object labelled `label`, whose `CKA_ID` must be `kcv`, for `recipient` with
    /// `padding`. Two objects under one label are an error, never a choice.
    pub fn wrap(
        &self,
        label: &str,
        kcv: Kcv,
        recipient: &RsaPublic,
        padding: Padding,
    ) -> Result<Vec<u8>, HsmError> {
        self.run(|session| match Self::find(session, label, Some(kcv))? {
            Found::One(key) => wrap_with(session, key, recipient, padding).map(Ok),
            Found::None => Ok(Err(HsmError::Object {
                label: label.to_owned(),
                message: format!(
                    "no longer in the token with CKA_ID {kcv} (the KCV its entry names)"
                ),
            })),
            Found::Many(n) => Ok(Err(ambiguous(label, n))),
        })?
    }

    /// A real operation: a fresh session key is generated in the token, wrapped by it with the
    /// configured padding to the start-up key pair, and the result decrypted and checked.
    fn self_test(&self) -> Result<(), HsmError> {
        let wrapped = self.run(|session| {
            let key = session.generate_key(
                &Mechanism::GenericSecretKeyGen,
                &[
                    Attribute::Token(false),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(true),
                    Attribute::ValueLen(32.into()),
                ],
            )?;
            let wrapped = wrap_with(session, key, &self.probe_public, self.wrap.padding);
            let _ = session.destroy_object(key);
            wrapped
        })?;
        let algorithm = self.wrap.padding.algorithm();
        let mut out = Zeroizing::new(vec![0u8; self.probe.min_output_size()]);
        let len = self
            .probe
            .decrypt(algorithm, &wrapped, &mut out, None)
            .map_err(|_| HsmError::Token("the token's wrap did not decrypt as RSA-OAEP".into()))?
            .len();
        if len != 32 {
            return Err(HsmError::Token(format!(
                "the token's wrap decrypted to {len} bytes, not 32"
            )));
        }
        Ok(())
    }

    /// The token's health by a real wrap (see `self_test`), reused for a moment.
    pub fn health(&self) -> Result<(), HsmError> {
        let mut cached = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, result)) = cached.as_ref() {
            if at.elapsed() < HEALTH_TTL {
                return result.clone();
            }
        }
        let result = self.self_test();
        *cached = Some((Instant::now(), result.clone()));
        result
    }
}

/// Imports `recipient` as a session object, wraps `key` under it, destroys it again.
fn wrap_with(
    session: &Session,
    key: ObjectHandle,
    recipient: &RsaPublic,
    padding: Padding,
) -> Result<Vec<u8>, CkError> {
    let public = session.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Wrap(true),
        Attribute::Modulus(recipient.modulus.clone()),
        Attribute::PublicExponent(recipient.exponent.clone()),
    ])?;
    let (hash, mgf) = match padding {
        Padding::OaepSha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        Padding::OaepSha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
    };
    let params = PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty());
    let wrapped = session.wrap_key(&Mechanism::RsaPkcsOaep(params), public, key);
    let _ = session.destroy_object(public);
    wrapped
}
