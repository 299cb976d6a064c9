//! The module, the token's slot, the login, and a bounded pool of sessions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use pci_vault::{Error, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Pkcs11Config;
use crate::token::describe;

/// Sessions of one token, at most `permits` in use at once. A PKCS#11 session runs one
/// operation at a time, so each call takes a session out of the pool and gives it back.
pub(crate) struct SessionPool {
    context: Pkcs11,
    slot: Slot,
    config: Pkcs11Config,
    idle: Mutex<Vec<Session>>,
    permits: Arc<Semaphore>,
    /// Logged in, never used for operations: a token's login lasts while the application
    /// has a session open on it, so this one keeps the pool's sessions logged in. Replaced
    /// when the login is restored.
    login: Mutex<Session>,
    /// How many times the login was restored: a call that saw the login lost restores it
    /// only if no other call did since that call began.
    restored: AtomicU64,
}

/// A session taken out of the pool.
pub(crate) struct Pooled(Session);

impl Pooled {
    pub(crate) fn session(&self) -> &Session {
        &self.0
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
        let unavailable = |what: &str, e: &CkError| {
            Error::key_unavailable(format!("PKCS#11 {what}: {}", describe(e)))
        };
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
        let slot = match found.as_slice() {
            [slot] => *slot,
            [] => {
                return Err(Error::key_unavailable(format!(
                    "no PKCS#11 token labelled {:?} in module {}",
                    config.token,
                    config.module.display()
                )));
            }
            _ => {
                return Err(Error::key_unavailable(format!(
                    "{} PKCS#11 tokens are labelled {:?}; labels must be unique",
                    found.len(),
                    config.token
                )));
            }
        };
        let mechanisms = context
            .get_mechanism_list(slot)
            .map_err(|e| unavailable("listing the token's mechanisms", &e))?;
        if !mechanisms.contains(&MechanismType::AES_GCM) {
            return Err(Error::key_unavailable(format!(
                "PKCS#11 token {:?} does not support the mechanism CKM_AES_GCM",
                config.token
            )));
        }
        let login = log_in(&context, slot, config)?;
        Ok((
            SessionPool {
                context,
                slot,
                config: config.clone(),
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(config.sessions)),
                login: Mutex::new(login),
                restored: AtomicU64::new(0),
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

    /// An idle session, or a new one.
    pub(crate) fn take(&self) -> Result<Pooled> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(session) => Ok(Pooled(session)),
            None => open_session(&self.context, self.slot, &self.config)
                .map(Pooled)
                .map_err(|e| {
                    Error::key_unavailable(format!("PKCS#11 opening a session: {}", describe(&e)))
                }),
        }
    }

    /// Returns a session to the pool, or closes it when it may be broken.
    pub(crate) fn give_back(&self, session: Pooled, reusable: bool) {
        if reusable {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(session.0);
        }
    }
}

impl SessionPool {
    /// How many times the login has been restored; give it to [`SessionPool::restore`].
    pub(crate) fn restorations(&self) -> u64 {
        self.restored.load(Ordering::SeqCst)
    }

    /// Logs in again, with the PIN read again from its source, on a new session, and drops
    /// every idle session (they belong to the lost login) — unless the login was restored
    /// since `seen` was read, by another call that saw it lost too.
    pub(crate) fn restore(&self, seen: u64) -> Result<()> {
        let mut login = self.login.lock().unwrap_or_else(PoisonError::into_inner);
        if self.restorations() != seen {
            return Ok(());
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        *login = log_in(&self.context, self.slot, &self.config)?;
        self.restored.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// A new read-write session, for creating keys.
    pub(crate) fn take_rw(&self) -> Result<Session> {
        self.context.open_rw_session(self.slot).map_err(|e| {
            Error::key_unavailable(format!(
                "PKCS#11 opening a read-write session: {}",
                describe(&e)
            ))
        })
    }
}

/// A new session on `slot`, logged in as the user with the PIN of `config`. A login the
/// application already holds counts.
fn log_in(context: &Pkcs11, slot: Slot, config: &Pkcs11Config) -> Result<Session> {
    let unavailable = |what: &str, e: &CkError| {
        Error::key_unavailable(format!("PKCS#11 {what}: {}", describe(e)))
    };
    let pin = config.pin.read()?;
    let session =
        open_session(context, slot, config).map_err(|e| unavailable("opening a session", &e))?;
    match session.login(UserType::User, Some(&AuthPin::from(pin.as_str()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(Error::key_unavailable(format!(
            "the PIN from {} is wrong for PKCS#11 token {:?}",
            config.pin, config.token
        ))),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Error::key_unavailable(format!(
            "the user PIN of PKCS#11 token {:?} is locked",
            config.token
        ))),
        Err(e) => Err(unavailable("logging in", &e)),
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
