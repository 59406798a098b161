//! Keys held in a PKCS#11 token (an HSM, or SoftHSM2 for evaluation).
//!
//! The token wraps the key itself: `C_WrapKey` with `CKM_RSA_PKCS_OAEP` under the database
//! certificate's public key, imported for the call as a session object. The server never reads a
//! key's value; the objects are created sensitive, and no code here asks for `CKA_VALUE`
//! (`tests/hsm.rs` checks both).
//!
//! Objects are found by label, `ccs/<instance>/<key_id>` ([`label`]); their `CKA_ID` holds the
//! 3-byte KCV, which must match the `kcv` of the key-store entry. The key-store file keeps every
//! key's state (`disabled`, `not_after`), so the kill switches work as with the file backend and
//! never need the token.
//!
//! Calls block, so the server makes them off its async workers. Sessions are pooled; a closed
//! session is replaced, a logged-out token is logged in again, and a device error drops every
//! session so that the next call reconnects (re-initialising the library when the token has
//! kept failing for `reinitialize_after`), so service resumes once the token is back, without
//! a restart.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::{Zeroize, Zeroizing};

use crate::config::{PinSource, Pkcs11Config, TokenSelector};
use crate::protocol::{InstanceName, KeyId};
use crate::secret::{Kcv, Secret};
use crate::wrap::{Padding, Plaintext, RsaPublic, WrapOptions};

mod store;
pub use store::TokenKeyStore;

/// The label of the token object holding `(instance, key_id)`.
pub fn label(instance: &InstanceName, key_id: KeyId) -> String {
    format!("{LABEL_PREFIX}{instance}/{key_id}")
}

/// Every label this server uses starts with this.
pub const LABEL_PREFIX: &str = "ccs/";

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

/// The connection to the token: `None` slot until (re)initialised.
struct Conn {
    slot: Option<Slot>,
    idle: Vec<Session>,
    /// Sessions handed out now (at most `sessions`).
    leased: usize,
    /// Bumped when the connection is reset; sessions of an older generation are not reused.
    generation: u64,
    /// When the token started failing (cleared by the next call that succeeds).
    failing_since: Option<Instant>,
    /// When the library was last initialised.
    initialized: Instant,
}

/// A session lent to one call. Returned to the pool on drop (unless `reuse` was cleared or the
/// connection was reset meanwhile); holds the call gate so that a reset waits for it.
struct Lease<'a> {
    hsm: &'a Hsm,
    _calls: RwLockReadGuard<'a, ()>,
    session: Option<Session>,
    generation: u64,
    reuse: bool,
    /// The call succeeded: the token is healthy.
    ok: bool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let session = self.session.take();
        let spare = {
            let mut conn = self.hsm.conn();
            conn.leased = conn.leased.saturating_sub(1);
            if self.ok {
                conn.failing_since = None;
            }
            let keep = self.reuse
                && conn.generation == self.generation
                && conn.slot.is_some()
                && conn.idle.len() < self.hsm.config.sessions;
            match session {
                Some(session) if keep => {
                    conn.idle.push(session);
                    None
                }
                other => other,
            }
        };
        self.hsm.freed.notify_one();
        // Closing a session is a token call: outside the lock.
        drop(spare);
    }
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

/// What a failed call means for the connection.
enum Recovery {
    /// The session is gone: open another and try again.
    NewSession,
    /// The token forgot the login: log in and try again.
    Login,
    /// The device failed: drop every session, reconnect, try again.
    Reset,
    /// A real answer (a missing object, a refused mechanism): report it.
    None,
}

fn recovery(error: &CkError) -> Recovery {
    match error {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::SessionHandleInvalid | RvError::SessionClosed => Recovery::NewSession,
            RvError::UserNotLoggedIn => Recovery::Login,
            RvError::DeviceError
            | RvError::DeviceRemoved
            | RvError::DeviceMemory
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::CryptokiNotInitialized
            | RvError::GeneralError
            | RvError::FunctionFailed => Recovery::Reset,
            _ => Recovery::None,
        },
        _ => Recovery::None,
    }
}

/// `C_WrapKey: ArgumentsBad`: short, and what the vendor's documentation is searched for.
fn describe(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, function) => format!("C_{function:?} failed: {rv:?}"),
        other => other.to_string(),
    }
}

/// The token refused the mechanism or its parameters (rather than failing).
fn refused_mechanism(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::ArgumentsBad | RvError::MechanismInvalid | RvError::MechanismParamInvalid,
            _
        )
    )
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
            conn: Mutex::new(Conn {
                slot: None,
                idle: Vec::new(),
                leased: 0,
                generation: 0,
                failing_since: None,
                initialized: Instant::now(),
            }),
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
                match wrap.padding {
                    Padding::OaepSha1 => "SHA-1/MGF1-SHA-1",
                    Padding::OaepSha256 => "SHA-256/MGF1-SHA-256",
                },
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

    fn conn(&self) -> MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Initialises the library (once per generation) and finds the slot.
    fn connect(&self) -> Result<Slot, HsmError> {
        let token = |message: String| HsmError::Token(format!("{}: {message}", self.token_name()));
        match self
            .pkcs11
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(token(format!("initialising the library: {}", describe(&e)))),
        }
        let slots = self
            .pkcs11
            .get_slots_with_token()
            .map_err(|e| token(describe(&e)))?;
        let mut labels = Vec::new();
        for slot in slots {
            let info = self
                .pkcs11
                .get_token_info(slot)
                .map_err(|e| token(describe(&e)))?;
            let found = match &self.config.token {
                TokenSelector::Label(want) => info.label().trim_end() == want.as_str(),
                TokenSelector::Slot(want) => slot.id() == *want,
            };
            if found {
                if !info.token_initialized() {
                    return Err(token("is not initialised".into()));
                }
                if info.user_pin_locked() {
                    return Err(token(
                        "the user PIN is locked: the security officer must reset it".into(),
                    ));
                }
                return Ok(slot);
            }
            labels.push(format!(
                "{:?} (slot {})",
                info.label().trim_end(),
                slot.id()
            ));
        }
        Err(token(format!(
            "not found; the module offers {}",
            if labels.is_empty() {
                "no token".to_owned()
            } else {
                labels.join(", ")
            }
        )))
    }

    /// A logged-in session from the pool, or a new one; waits while all `sessions` are in use.
    /// A failure to connect or to open a session resets the connection for the next call.
    fn checkout(&self) -> Result<Lease<'_>, HsmError> {
        let calls = self.calls.read().unwrap_or_else(PoisonError::into_inner);
        let (generation, slot, idle) = {
            let mut conn = self.conn();
            let deadline = Instant::now() + SESSION_WAIT;
            while conn.leased >= self.config.sessions {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(HsmError::Token(format!(
                        "{}: all {} sessions stayed busy for {} s",
                        self.token_name(),
                        self.config.sessions,
                        SESSION_WAIT.as_secs()
                    )));
                }
                conn = self
                    .freed
                    .wait_timeout(conn, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            conn.leased += 1;
            (conn.generation, conn.slot, conn.idle.pop())
        };
        let mut lease = Lease {
            hsm: self,
            _calls: calls,
            session: idle,
            generation,
            reuse: true,
            ok: false,
        };
        if lease.session.is_some() {
            return Ok(lease);
        }
        match self.open_session(slot, generation) {
            Ok(session) => {
                lease.session = Some(session);
                Ok(lease)
            }
            Err(e) => {
                drop(lease);
                self.reset(generation);
                Err(e)
            }
        }
    }

    /// Connects when needed and opens a logged-in read-only session.
    fn open_session(&self, slot: Option<Slot>, generation: u64) -> Result<Session, HsmError> {
        let slot = match slot {
            Some(slot) => slot,
            None => {
                let slot = self.connect()?;
                let mut conn = self.conn();
                if conn.generation == generation {
                    conn.slot = Some(slot);
                }
                slot
            }
        };
        let session = self.pkcs11.open_ro_session(slot).map_err(|e| {
            HsmError::Token(format!(
                "{}: opening a session: {}",
                self.token_name(),
                describe(&e)
            ))
        })?;
        self.login(&session)?;
        Ok(session)
    }

    fn login(&self, session: &Session) -> Result<(), HsmError> {
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(HsmError::Token(format!(
                "{}: the user PIN is wrong (CKR_PIN_INCORRECT); check keys.pkcs11.pin_file or pin_env — the token may lock the PIN after a few more tries",
                self.token_name()
            ))),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(HsmError::Token(format!(
                "{}: the user PIN is locked (CKR_PIN_LOCKED): the security officer must reset it",
                self.token_name()
            ))),
            Err(e) => Err(HsmError::Token(format!(
                "{}: logging in: {}",
                self.token_name(),
                describe(&e)
            ))),
        }
    }

    /// Drops every pooled session (once no other call is in flight) so that the next call
    /// reconnects: finds the token again, opens sessions and logs in. When the token has been
    /// failing for `reinitialize_after`, the library is also finalised and initialised again (at
    /// most that often: some modules, SoftHSM2 among them, do not survive frequent cycles).
    fn reset(&self, generation: u64) {
        let _calls = self.calls.write().unwrap_or_else(PoisonError::into_inner);
        let (idle, reinitialize) = {
            let mut conn = self.conn();
            if conn.generation != generation {
                return; // another thread has reset it already
            }
            conn.generation += 1;
            conn.slot = None;
            let now = Instant::now();
            let since = *conn.failing_since.get_or_insert(now);
            let every = self.config.reinitialize_after;
            let reinitialize =
                now.duration_since(since) >= every && now.duration_since(conn.initialized) >= every;
            if reinitialize {
                conn.initialized = now;
            }
            (std::mem::take(&mut conn.idle), reinitialize)
        };
        drop(idle);
        if reinitialize {
            tracing::warn!(
                target: "ccs_endpoint::hsm",
                module = %self.config.module.display(),
                "the token keeps failing; re-initialising the PKCS#11 library"
            );
            let _ = self.pkcs11.clone().finalize();
        }
    }

    /// Runs `op` on a pooled session, recovering once from a closed session, a logged-out
    /// token or a device error.
    fn run<T>(&self, mut op: impl FnMut(&Session) -> Result<T, CkError>) -> Result<T, HsmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lease = self.checkout()?;
            let generation = lease.generation;
            let Some(session) = lease.session.as_ref() else {
                return Err(HsmError::Token("no session".into()));
            };
            let error = match op(session) {
                Ok(value) => {
                    lease.ok = true;
                    return Ok(value);
                }
                Err(error) => error,
            };
            let how = recovery(&error);
            let message = describe(&error);
            match how {
                Recovery::None => {
                    return Err(if refused_mechanism(&error) {
                        HsmError::Mechanism(message)
                    } else {
                        HsmError::Token(format!("{}: {message}", self.token_name()))
                    });
                }
                Recovery::NewSession => lease.reuse = false,
                Recovery::Login => self.login(session)?,
                Recovery::Reset => {
                    lease.reuse = false;
                    drop(lease);
                    self.reset(generation);
                }
            }
            if attempt >= 2 {
                return Err(HsmError::Token(format!("{}: {message}", self.token_name())));
            }
            tracing::warn!(
                target: "ccs_endpoint::hsm",
                error = %message,
                recovery = match how {
                    Recovery::NewSession => "new session",
                    Recovery::Login => "log in again",
                    _ => "reconnect",
                },
                "token call failed; recovering"
            );
        }
    }

    /// The secret-key objects with this label (and this KCV as `CKA_ID`, when given).
    fn find(session: &Session, label: &str, kcv: Option<Kcv>) -> Result<Found, CkError> {
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
        let algorithm = match self.wrap.padding {
            Padding::OaepSha1 => &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
            Padding::OaepSha256 => &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
        };
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

    /// Every `ccs/` secret-key object in the token: label, whether sensitive, the KCV in its
    /// `CKA_ID`.
    pub fn objects(&self) -> Result<Vec<TokenObject>, HsmError> {
        self.run(|session| {
            let handles = session.find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Token(true),
            ])?;
            let mut objects = Vec::new();
            for handle in handles {
                let facts = read_facts(session, handle)?;
                let kcv = facts.kcv();
                if let Some(label) = facts.label.filter(|l| l.starts_with(LABEL_PREFIX)) {
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
                        "already exists in the token: replacing a live key makes the database's data unreadable; pass --force if that is really meant".into(),
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

/// What a label search found.
enum Found<T = ObjectHandle> {
    None,
    One(T),
    Many(usize),
}

fn ambiguous(label: &str, n: usize) -> HsmError {
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
struct Facts {
    label: Option<String>,
    sensitive: Option<bool>,
    extractable: Option<bool>,
    value_len: Option<u64>,
    id: Option<Vec<u8>>,
}

impl Facts {
    /// The KCV `CKA_ID` carries, when it is 3 bytes.
    fn kcv(&self) -> Option<String> {
        let id: &[u8; 3] = self.id.as_deref()?.try_into().ok()?;
        Some(hex::encode_upper(id))
    }
}

fn read_facts(session: &Session, handle: ObjectHandle) -> Result<Facts, CkError> {
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

/// Reads the user PIN from its file or environment variable.
fn read_pin(source: &PinSource) -> Result<AuthPin, String> {
    let text = match source {
        PinSource::File(path) => read_pin_file(path)?,
        PinSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|_| {
            format!("the PIN environment variable {var} (keys.pkcs11.pin_env) is not set")
        })?),
    };
    let pin = text.strip_suffix('\n').unwrap_or(&text);
    let pin = pin.strip_suffix('\r').unwrap_or(pin);
    if pin.is_empty() {
        return Err("the user PIN is empty".into());
    }
    Ok(AuthPin::from(pin.to_owned()))
}

/// Judges the PIN file's permissions as the key store's are judged: others may not read it and
/// the group may not write it (unless `allow_open`, with a warning); group-readable warns.
pub fn pin_file_verdict(path: &Path, allow_open: bool) -> Result<Option<String>, HsmError> {
    let refused = |message: String| {
        HsmError::PinFile(format!(
            "PIN file {} (keys.pkcs11.pin_file): {message}",
            path.display()
        ))
    };
    crate::keystore::Permissions::of(path)
        .map_err(|e| refused(e.to_string()))?
        .judge("PIN file", "the PIN", path, allow_open)
        .map_err(refused)
}

fn read_pin_file(path: &Path) -> Result<Zeroizing<String>, String> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("PIN file {} (keys.pkcs11.pin_file): {e}", path.display()))
}
