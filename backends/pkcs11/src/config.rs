//! What a PKCS#11 key source names, and its text form.

use std::fmt;
use std::path::PathBuf;

use pci_vault::{Error, KeyId, Result};
use zeroize::Zeroizing;

/// Where the PKCS#11 provider finds its token, its keys and its PIN.
///
/// `Debug` shows no PIN (the configuration only names where the PIN is).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct Pkcs11Config {
    /// The vendor's PKCS#11 module (a shared library), e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the token that holds the keys.
    pub token: String,
    /// The label of the AES key that wraps new data keys; it is also the key id in records.
    pub key: KeyId,
    /// Labels of earlier keys that only unwrap records sealed before a rotation.
    pub previous: Vec<KeyId>,
    /// Where the user PIN is read from, once, at open.
    pub pin: PinSource,
    /// How many sessions the provider opens at most (calls run one a session), 1–64.
    pub sessions: usize,
    /// Whether the provider's sessions are read-write. Read-only by default: the provider
    /// never writes to the token. For tokens that have no read-only sessions (AWS CloudHSM
    /// Client SDK 5).
    pub read_write: bool,
}

/// Where the token's user PIN comes from.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum PinSource {
    /// A file holding the PIN (a trailing line break is ignored), e.g. a mounted secret.
    File(PathBuf),
    /// An environment variable holding the PIN.
    Env(String),
}

const SYNTAX: &str = "a pkcs11 key source is pkcs11:module=PATH;token=LABEL;key=LABEL\
                      [;previous=LABEL,LABEL][;pin-file=PATH|pin-env=VAR][;sessions=N]\
                      [;session-mode=read-only|read-write]";

impl Pkcs11Config {
    /// Default of [`Pkcs11Config::sessions`].
    pub const DEFAULT_SESSIONS: usize = 4;
    /// Largest [`Pkcs11Config::sessions`].
    pub const MAX_SESSIONS: usize = 64;

    /// A configuration with no previous keys and the default session count.
    pub fn new(
        module: impl Into<PathBuf>,
        token: impl Into<String>,
        key: KeyId,
        pin: PinSource,
    ) -> Self {
        Pkcs11Config {
            module: module.into(),
            token: token.into(),
            key,
            previous: Vec::new(),
            pin,
            sessions: Self::DEFAULT_SESSIONS,
            read_write: false,
        }
    }

    /// Parses the parameters of a `pkcs11:` key source: `;`-separated `name=value` pairs
    /// `module`, `token`, `key` (required), `previous` (comma-separated labels), exactly one
    /// of `pin-file` and `pin-env`, `sessions`, and `session-mode` (`read-only`, the default,
    /// or `read-write`).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown, repeated or missing parameter or a malformed
    /// value; the message never repeats the text.
    pub fn parse(params: &str) -> Result<Self> {
        let (mut module, mut token, mut key, mut previous, mut pin, mut sessions) =
            (None, None, None, None, None, None);
        let mut read_write = None;
        for pair in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').ok_or(Error::InvalidArgument(SYNTAX))?;
            let value = value.trim();
            if value.is_empty() {
                return Err(Error::InvalidArgument(SYNTAX));
            }
            let fresh = match name.trim() {
                "module" => module.replace(PathBuf::from(value)).is_none(),
                "token" => token.replace(value.to_owned()).is_none(),
                "key" => key.replace(KeyId::new(value)?).is_none(),
                "previous" => previous
                    .replace(
                        value
                            .split(',')
                            .map(|id| KeyId::new(id.trim()))
                            .collect::<Result<Vec<_>>>()?,
                    )
                    .is_none(),
                "pin-file" => pin.replace(PinSource::File(PathBuf::from(value))).is_none(),
                "pin-env" => pin.replace(PinSource::Env(value.to_owned())).is_none(),
                "sessions" => sessions
                    .replace(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=Self::MAX_SESSIONS).contains(n))
                            .ok_or(Error::InvalidArgument(
                                "pkcs11 sessions is a whole number from 1 to 64",
                            ))?,
                    )
                    .is_none(),
                "session-mode" => read_write
                    .replace(match value {
                        "read-only" => false,
                        "read-write" => true,
                        _ => {
                            return Err(Error::InvalidArgument(
                                "pkcs11 session-mode is read-only or read-write",
                            ));
                        }
                    })
                    .is_none(),
                _ => false,
            };
            if !fresh {
                return Err(Error::InvalidArgument(SYNTAX));
            }
        }
        match (module, token, key, pin) {
            (Some(module), Some(token), Some(key), Some(pin)) => Ok(Pkcs11Config {
                module,
                token,
                key,
                previous: previous.unwrap_or_default(),
                pin,
                sessions: sessions.unwrap_or(Self::DEFAULT_SESSIONS),
                read_write: read_write.unwrap_or(false),
            }),
            _ => Err(Error::InvalidArgument(SYNTAX)),
        }
    }

    /// The source for logs, without secrets: `pkcs11 (token T, key K, N previous)`.
    pub fn describe(&self) -> String {
        format!(
            "pkcs11 (token {}, key {}, {} previous)",
            self.token,
            self.key,
            self.previous.len()
        )
    }
}

impl PinSource {
    /// Reads the PIN now.
    ///
    /// # Errors
    /// `KEY_UNAVAILABLE` naming the file or variable, never the PIN.
    pub(crate) fn read(&self) -> Result<Zeroizing<String>> {
        let pin = match self {
            PinSource::File(path) => {
                Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    Error::key_unavailable(format!(
                        "cannot read the PKCS#11 PIN file {}: {}",
                        path.display(),
                        e.kind()
                    ))
                })?)
            }
            PinSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|_| {
                Error::key_unavailable(format!(
                    "the PKCS#11 PIN variable {var} is not set or not Unicode"
                ))
            })?),
        };
        let trimmed = Zeroizing::new(pin.trim_end_matches(['\r', '\n']).to_owned());
        if trimmed.is_empty() {
            return Err(Error::key_unavailable(format!(
                "the PKCS#11 PIN from {self} is empty"
            )));
        }
        Ok(trimmed)
    }
}

impl fmt::Display for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinSource::File(path) => write!(f, "file {}", path.display()),
            PinSource::Env(var) => write!(f, "variable {var}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_names_every_part() {
        let c = Pkcs11Config::parse(
            "module=/m.so; token=vault ;key=k2;previous=k1,k0;pin-env=HSM_PIN;sessions=2",
        )
        .unwrap();
        assert_eq!(c.module, PathBuf::from("/m.so"));
        assert_eq!(c.token, "vault");
        assert_eq!(c.key.as_str(), "k2");
        assert_eq!(c.previous.len(), 2);
        assert_eq!(c.pin, PinSource::Env("HSM_PIN".into()));
        assert_eq!(c.sessions, 2);
        assert!(!c.read_write, "read-only by default");
        assert_eq!(c.describe(), "pkcs11 (token vault, key k2, 2 previous)");
        let rw =
            Pkcs11Config::parse("module=/m.so;token=t;key=k;pin-env=A;session-mode=read-write");
        assert!(rw.unwrap().read_write);
        let ro = Pkcs11Config::parse("module=/m.so;token=t;key=k;pin-env=A;session-mode=read-only");
        assert!(!ro.unwrap().read_write);
        for bad in [
            "",
            "module=/m.so;token=t;key=k",
            "module=/m.so;token=t;key=k;pin-env=A;pin-file=/p",
            "module=/m.so;token=t;key=k;pin-env=A;colour=red",
            "module=/m.so;token=t;key=k k;pin-env=A",
            "module=/m.so;token=t;key=k;pin-env=A;sessions=0",
            "module=/m.so;token=t;key=k;pin-env=A;sessions=65",
            "module=/m.so;token=t;key=;pin-env=A",
            "module=/m.so;token=t;key=k;pin-env",
            "module=/m.so;token=t;key=k;pin-env=A;session-mode=rw",
            "module=/m.so;token=t;key=k;pin-env=A;session-mode=read-write;session-mode=read-only",
        ] {
            assert_eq!(
                Pkcs11Config::parse(bad).unwrap_err().code(),
                pci_vault::ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
    }
}
