//! The connection to the token: a pool of logged-in sessions, and recovery from a closed
//! session, a logged-out token or a device error.

use std::sync::{MutexGuard, PoisonError, RwLockReadGuard};
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use super::{Hsm, HsmError, SESSION_WAIT};
use crate::config::TokenSelector;

/// The connection to the token: `None` slot until (re)initialised.
pub(super) struct Conn {
    pub(super) slot: Option<Slot>,
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

impl Conn {
    /// Not connected yet: the first call initialises the library and finds the slot.
    pub(super) fn new() -> Self {
        Self {
            slot: None,
            idle: Vec::new(),
            leased: 0,
            generation: 0,
            failing_since: None,
            initialized: Instant::now(),
        }
    }
}

/// A session lent to one call. Returned to the pool on drop (unless `reuse` was cleared or the
/// connection was reset meanwhile); holds the call gate so that a reset waits for it.
pub(super) struct Lease<'a> {
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
pub(super) fn describe(error: &CkError) -> String {
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
    pub(super) fn conn(&self) -> MutexGuard<'_, Conn> {
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
    pub(super) fn checkout(&self) -> Result<Lease<'_>, HsmError> {
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

    pub(super) fn login(&self, session: &Session) -> Result<(), HsmError> {
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
    pub(super) fn run<T>(
        &self,
        mut op: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, HsmError> {
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
}
