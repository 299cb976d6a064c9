//! The module, the token's slot, the login, and a bounded pool of sessions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use pci_vault::{Error, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use crate::config::Pkcs11Config;
use crate::token::describe;

/// Sessions of one token, at most `permits` in use at once. A PKCS#11 session runs one
/// operation at a time, so each call takes a session out of the pool and gives it back.
pub(crate) struct SessionPool {
    context: Pkcs11,
    slot: Mutex<Slot>,
    config: Pkcs11Config,
    idle: Mutex<Vec<Session>>,
    permits: Arc<Semaphore>,
    login: Mutex<Login>,
    /// How many times the login was restored: a call that saw the login lost restores it
    /// only if no other call did since that call began; sessions taken before a
    /// restoration are not given back after it.
    restored: AtomicU64,
    /// Set while a restoration has begun and not succeeded: calls restore first.
    stale: AtomicBool,
}

/// The login, and what limits logging in again.
struct Login {
    /// Logged in, never used for operations: a token's login lasts while the application
    /// has a session open on it, so this one keeps the pool's sessions logged in.
    session: Session,
    /// The PIN the token refused when logging in again: not tried again until the PIN
    /// source holds another one, so a wrong PIN file cannot use up the token's login
    /// attempts and lock it.
    refused_pin: Option<Zeroizing<String>>,
    /// When logging in again was last tried.
    last_try: Option<Instant>,
}

/// Least time between two tries to log in again.
const RESTORE_INTERVAL: Duration = Duration::from_secs(1);

/// A session taken out of the pool, and the restoration it was opened under.
pub(crate) struct Pooled {
    session: Session,
    restoration: u64,
}

impl Pooled {
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }
}

/// One initialised context per module path for the whole process: PKCS#11 allows one
/// `C_Initialize` per module and process, and finalising it would end every provider's
/// sessions.
fn module(path: &PathBuf) -> Result<Pkcs11> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(context) = modules.get(path) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(path).map_err(|e| {
        Error::key_unavailable(format!(
            "cannot load the PKCS#11 module {}: {e}",
            path.display()
        ))
    })?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Error::key_unavailable(format!(
                "cannot initialise the PKCS#11 module {}: {}",
                path.display(),
                describe(&e)
            )));
        }
    }
    modules.insert(path.clone(), context.clone());
    Ok(context)
}

impl SessionPool {
    /// Loads the module, finds the token by label, checks it offers `CKM_AES_GCM` and logs
    /// in. Returns the pool and the token's label.
    pub(crate) fn open(config: &Pkcs11Config) -> Result<(Self, String)> {
        let context = module(&config.module)?;
        let slot = find_slot(&context, config)?;
        let mechanisms = context
            .get_mechanism_list(slot)
            .map_err(|e| unavailable("listing the token's mechanisms", &e))?;
        if !mechanisms.contains(&MechanismType::AES_GCM) {
            return Err(Error::key_unavailable(format!(
                "PKCS#11 token {:?} does not support the mechanism CKM_AES_GCM",
                config.token
            )));
        }
        let pin = config.pin.read()?;
        let session = log_in(&context, slot, config, &pin).map_err(LoginError::into_error)?;
        Ok((
            SessionPool {
                context,
                slot: Mutex::new(slot),
                config: config.clone(),
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(config.sessions)),
                login: Mutex::new(Login {
                    session,
                    refused_pin: None,
                    last_try: None,
                }),
                restored: AtomicU64::new(0),
                stale: AtomicBool::new(false),
            },
            config.token.clone(),
        ))
    }

    /// Waits for one of the pool's places.
    pub(crate) async fn permit(&self) -> Result<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::key_unavailable("the PKCS#11 session pool is closed"))
    }

    fn slot(&self) -> Slot {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Session>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle session, or a new one.
    pub(crate) fn take(&self) -> Result<Pooled> {
        let restoration = self.restorations();
        let idle = self.idle().pop();
        let session = match idle {
            Some(session) => session,
            None => open_session(&self.context, self.slot(), &self.config)
                .map_err(|e| unavailable("opening a session", &e))?,
        };
        Ok(Pooled {
            session,
            restoration,
        })
    }

    /// Returns a session to the pool, or closes it: when it may be broken, or when the
    /// login was restored since it was taken (it belongs to the lost one).
    pub(crate) fn give_back(&self, session: Pooled, reusable: bool) {
        if reusable && session.restoration == self.restorations() {
            self.idle().push(session.session);
        }
    }

    /// How many times the login has been restored; give it to [`SessionPool::restore`].
    pub(crate) fn restorations(&self) -> u64 {
        self.restored.load(Ordering::SeqCst)
    }

    /// Whether a restoration has begun and not succeeded.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::SeqCst)
    }

    /// Logs in again, unless the login was restored since `seen` was read (by another call
    /// that saw it lost too): finds the token by its label again (it may come back in
    /// another slot), drops every idle session, reads the PIN again, logs in on a new
    /// session and runs `then` on it (finding the keys again). It counts as restored only
    /// when all of that succeeds.
    ///
    /// At most one try per [`RESTORE_INTERVAL`], and never again with a PIN the token
    /// refused: a wrong PIN file must not lock the token.
    pub(crate) fn restore(
        &self,
        seen: u64,
        then: impl FnOnce(&Session) -> Result<()>,
    ) -> Result<()> {
        let mut login = self.login.lock().unwrap_or_else(PoisonError::into_inner);
        if self.restorations() != seen {
            return Ok(());
        }
        self.stale.store(true, Ordering::SeqCst);
        if login
            .last_try
            .is_some_and(|at| at.elapsed() < RESTORE_INTERVAL)
        {
            return Err(Error::key_unavailable(format!(
                "PKCS#11 token {:?}: logging in again was last tried less than \
                 {RESTORE_INTERVAL:?} ago",
                self.config.token
            )));
        }
        login.last_try = Some(Instant::now());
        let pin = self.config.pin.read()?;
        if login
            .refused_pin
            .as_ref()
            .is_some_and(|refused| refused.as_str() == pin.as_str())
        {
            return Err(Error::key_unavailable(format!(
                "PKCS#11 token {:?} refused the PIN from {}; not logging in with it again until \
                 it changes",
                self.config.token, self.config.pin
            )));
        }
        self.idle().clear();
        let slot = find_slot(&self.context, &self.config)?;
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = slot;
        let session = match log_in(&self.context, slot, &self.config, &pin) {
            Ok(session) => session,
            Err(LoginError::PinRefused(e)) => {
                login.refused_pin = Some(pin);
                return Err(e);
            }
            Err(LoginError::Other(e)) => return Err(e),
        };
        then(&session)?;
        login.session = session;
        login.refused_pin = None;
        self.restored.fetch_add(1, Ordering::SeqCst);
        self.stale.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// A new read-write session, for creating keys.
    pub(crate) fn take_rw(&self) -> Result<Session> {
        self.context
            .open_rw_session(self.slot())
            .map_err(|e| unavailable("opening a read-write session", &e))
    }
}

fn unavailable(what: &str, e: &CkError) -> Error {
    Error::key_unavailable(format!("PKCS#11 {what}: {}", describe(e)))
}

/// The one slot whose token has the label of `config`.
fn find_slot(context: &Pkcs11, config: &Pkcs11Config) -> Result<Slot> {
    let slots = context
        .get_slots_with_token()
        .map_err(|e| unavailable("listing the slots", &e))?;
    let mut found = Vec::new();
    for slot in slots {
        let info = context
            .get_token_info(slot)
            .map_err(|e| unavailable("reading a token's information", &e))?;
        if info.label().trim_end() == config.token {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(Error::key_unavailable(format!(
            "no PKCS#11 token labelled {:?} in module {}",
            config.token,
            config.module.display()
        ))),
        _ => Err(Error::key_unavailable(format!(
            "{} PKCS#11 tokens are labelled {:?}; labels must be unique",
            found.len(),
            config.token
        ))),
    }
}

/// Why logging in failed: the token refused the PIN, or something else.
enum LoginError {
    PinRefused(Error),
    Other(Error),
}

impl LoginError {
    fn into_error(self) -> Error {
        match self {
            LoginError::PinRefused(e) | LoginError::Other(e) => e,
        }
    }
}

/// A new session on `slot`, logged in as the user with `pin`. A login the application
/// already holds counts.
fn log_in(
    context: &Pkcs11,
    slot: Slot,
    config: &Pkcs11Config,
    pin: &str,
) -> std::result::Result<Session, LoginError> {
    let session = open_session(context, slot, config)
        .map_err(|e| LoginError::Other(unavailable("opening a session", &e)))?;
    match session.login(UserType::User, Some(&AuthPin::from(pin))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
            Err(LoginError::PinRefused(Error::key_unavailable(format!(
                "the PIN from {} is wrong for PKCS#11 token {:?}",
                config.pin, config.token
            ))))
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
            Err(LoginError::PinRefused(Error::key_unavailable(format!(
                "the user PIN of PKCS#11 token {:?} is locked",
                config.token
            ))))
        }
        Err(e) => Err(LoginError::Other(unavailable("logging in", &e))),
    }
}

/// A new session on `slot`: read-only unless `config` asks for read-write sessions.
fn open_session(
    context: &Pkcs11,
    slot: Slot,
    config: &Pkcs11Config,
) -> std::result::Result<Session, CkError> {
    if config.read_write {
        context.open_rw_session(slot)
    } else {
        context.open_ro_session(slot)
    }
}

/// Whether `session` has lost what a call needs: the session itself (the token restarted
/// or dropped it) or the login (the token logged the application out).
pub(crate) fn lost(session: &Session) -> bool {
    match session.get_session_info() {
        Err(_) => true,
        Ok(info) => matches!(
            info.session_state(),
            SessionState::RoPublic | SessionState::RwPublic
        ),
    }
}
