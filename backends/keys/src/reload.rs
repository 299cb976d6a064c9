//! Keyrings read from files, reloaded when the files change.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pci_vault::{DataKey, KeyId, KeyProvider, Keyring, WrappedKey};
use zeroize::Zeroizing;

use crate::LoadError;
use crate::text::shown_path;
use crate::text::{decode_key, parse_keyring};

/// How often, at most, the files are checked when a key is used.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest time between two checks forced by an unknown key id, so records naming
/// unknown ids cannot make the provider read the disk on every call.
const FORCED_CHECK_SPACING: Duration = Duration::from_secs(1);

/// How soon a check that found material it could not load is made again, once (when the
/// interval is longer): a Secret caught halfway through a change loads a moment later.
const RETRY_AFTER_BAD_MATERIAL: Duration = Duration::from_secs(1);

/// Largest key file accepted; a keyring text is a few hundred bytes.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Reads the raw material of one source and turns it into a keyring.
trait Source: Send + Sync {
    fn describe(&self) -> String;
    fn read(&self) -> Result<Zeroizing<Vec<u8>>, LoadError>;
    fn parse(&self, raw: &[u8]) -> Result<Keyring, LoadError>;
}

struct Reloading<S> {
    source: S,
    current: ArcSwap<Keyring>,
    check: Mutex<CheckState>,
    interval: Duration,
}

struct CheckState {
    last_check: Instant,
    last_forced: Option<Instant>,
    last_raw: Zeroizing<Vec<u8>>,
    /// The last check failed after one that did: the next waits the whole interval.
    failing: bool,
}

impl<S: Source> Reloading<S> {
    fn open(source: S, interval: Duration) -> Result<Self, LoadError> {
        let raw = source.read()?;
        let keyring = source.parse(&raw)?;
        Ok(Reloading {
            source,
            current: ArcSwap::from_pointee(keyring),
            check: Mutex::new(CheckState {
                last_check: Instant::now(),
                last_forced: None,
                last_raw: raw,
                failing: false,
            }),
            interval,
        })
    }

    /// Re-reads the source when the interval has passed (or, with `forced`, when the last
    /// forced check is a second old) and swaps in the new keyring if the material changed
    /// and loads. Bad material is logged and ignored: the last good keyring stays.
    fn refresh(&self, forced: bool) {
        let mut check = self.check.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let due = if forced {
            check
                .last_forced
                .is_none_or(|t| now.duration_since(t) >= FORCED_CHECK_SPACING)
        } else {
            now.duration_since(check.last_check) >= self.interval
        };
        if !due {
            return;
        }
        check.last_check = now;
        if forced {
            check.last_forced = Some(now);
        }
        let loaded = self.source.read().and_then(|raw| {
            if *raw == *check.last_raw {
                return Ok(None);
            }
            self.source.parse(&raw).map(|ring| Some((ring, raw)))
        });
        match loaded {
            Ok(None) => check.failing = false,
            Ok(Some((ring, raw))) => {
                check.failing = false;
                tracing::info!(
                    source = %self.source.describe(),
                    primary = %ring.primary(),
                    keys = ring.key_ids().count(),
                    "reloaded the keyring"
                );
                self.current.store(Arc::new(ring));
                check.last_raw = raw;
            }
            Err(e) => {
                tracing::error!(error = %e, "keeping the previous keyring: the new key material does not load");
                // The first failure is checked again soon (material caught between two
                // writes); material that stays bad is checked at the usual interval, so it
                // is not re-read and logged every second.
                if !check.failing {
                    let wait = self.interval.min(RETRY_AFTER_BAD_MATERIAL);
                    check.last_check = now
                        .checked_sub(self.interval.saturating_sub(wait))
                        .unwrap_or(now);
                }
                check.failing = true;
            }
        }
    }

    fn keyring(&self) -> Arc<Keyring> {
        self.refresh(false);
        self.current.load_full()
    }

    fn keyring_with(&self, id: &KeyId) -> Arc<Keyring> {
        let ring = self.keyring();
        if ring.contains(id) {
            return ring;
        }
        self.refresh(true);
        self.current.load_full()
    }
}

fn read_small_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, LoadError> {
    let meta = fs::metadata(path)
        .map_err(|e| LoadError::new(shown_path(path), format!("cannot be read: {}", e.kind())))?;
    if meta.len() > MAX_FILE_LEN {
        return Err(LoadError::new(shown_path(path), "is larger than 64 KiB"));
    }
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| LoadError::new(shown_path(path), format!("cannot be read: {}", e.kind())))
}

struct FileSource(PathBuf);

impl Source for FileSource {
    fn describe(&self) -> String {
        shown_path(&self.0)
    }

    fn read(&self) -> Result<Zeroizing<Vec<u8>>, LoadError> {
        read_small_file(&self.0)
    }

    fn parse(&self, raw: &[u8]) -> Result<Keyring, LoadError> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| LoadError::new(self.describe(), "is not UTF-8 text"))?;
        parse_keyring(text).map_err(|e| e.in_source(self.describe()))
    }
}

struct DirectorySource(PathBuf);

impl DirectorySource {
    const PRIMARY: &'static str = "primary";

    /// The directory to read. In the kubelet's layout of a Secret volume — the files in a
    /// timestamped directory, `..data` linking to it, each name at the top linking through
    /// `..data` — that timestamped directory itself: one read then sees one version of the
    /// Secret even while the kubelet publishes the next (it switches `..data` first and
    /// adds the links of new names after). Elsewhere (no `..data`, or a `primary` at the top
    /// that does not link through it), the directory as given.
    fn snapshot(&self) -> PathBuf {
        let through_data = fs::read_link(self.0.join(Self::PRIMARY))
            .is_ok_and(|target| target.starts_with("..data"));
        match fs::canonicalize(self.0.join("..data")) {
            Ok(target) if through_data && target.is_dir() => target,
            _ => self.0.clone(),
        }
    }
}

impl Source for DirectorySource {
    fn describe(&self) -> String {
        shown_path(&self.0)
    }

    /// The material as `name \0 content \0` for every key file, sorted by name.
    fn read(&self) -> Result<Zeroizing<Vec<u8>>, LoadError> {
        let dir = self.snapshot();
        let listing = fs::read_dir(&dir).map_err(|e| {
            LoadError::new(self.describe(), format!("cannot be listed: {}", e.kind()))
        })?;
        let mut names = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| {
                LoadError::new(self.describe(), format!("cannot be listed: {}", e.kind()))
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_file() {
                continue;
            }
            names.push(name);
        }
        names.sort();
        let mut raw = Zeroizing::new(Vec::new());
        for name in names {
            let content = read_small_file(&dir.join(&name))?;
            raw.extend_from_slice(name.as_bytes());
            raw.push(0);
            raw.extend_from_slice(&content);
            raw.push(0);
        }
        Ok(raw)
    }

    fn parse(&self, raw: &[u8]) -> Result<Keyring, LoadError> {
        let mut parts = raw.split(|&b| b == 0);
        let mut primary = None;
        let mut keys = Vec::new();
        while let (Some(name), Some(content)) = (parts.next(), parts.next()) {
            let name = String::from_utf8_lossy(name).into_owned();
            let text = std::str::from_utf8(content)
                .map_err(|_| LoadError::new(self.0.join(&name).display(), "is not UTF-8 text"))?;
            if name == Self::PRIMARY {
                primary = Some(KeyId::new(text.trim()).map_err(|_| {
                    LoadError::new(self.0.join(&name).display(), "does not hold a valid key id")
                })?);
                continue;
            }
            let Ok(id) = KeyId::new(name.as_str()) else {
                tracing::warn!(file = %self.0.join(&name).display(), "skipping a file whose name is not a key id");
                continue;
            };
            let key = decode_key(text)
                .map_err(|reason| LoadError::new(self.0.join(&name).display(), reason))?;
            keys.push((id, key));
        }
        let primary =
            primary.ok_or_else(|| LoadError::new(self.describe(), "has no file named primary"))?;
        Keyring::new(primary, keys).map_err(|e| LoadError::new(self.describe(), e.to_string()))
    }
}

macro_rules! reloading_provider {
    ($name:ident, $source:ident, $what:literal) => {
        impl $name {
            /// Loads the keyring now, and reloads it when the files change (checked at most
            /// every [`DEFAULT_CHECK_INTERVAL`] when a key is used).
            ///
            /// # Errors
            #[doc = concat!("[`LoadError`] when the ", $what, " cannot be read or its key material is bad.")]
            pub fn open(path: impl Into<PathBuf>) -> Result<Self, LoadError> {
                Self::with_check_interval(path, DEFAULT_CHECK_INTERVAL)
            }

            /// As [`Self::open`], checking the files at most every `interval`.
            ///
            /// # Errors
            /// As [`Self::open`].
            pub fn with_check_interval(path: impl Into<PathBuf>, interval: Duration) -> Result<Self, LoadError> {
                Ok($name(Reloading::open($source(path.into()), interval)?))
            }

            /// The keyring in use now.
            pub fn keyring(&self) -> Arc<Keyring> {
                self.0.keyring()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("path", &self.0.source.describe())
                    .field("keyring", &self.0.current.load())
                    .finish_non_exhaustive()
            }
        }

        #[async_trait]
        impl KeyProvider for $name {
            async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> pci_vault::Result<WrappedKey> {
                self.0.keyring().wrap_now(dek, aad)
            }

            async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> pci_vault::Result<DataKey> {
                self.0.keyring_with(&wrapped.key_id).unwrap_now(wrapped, aad)
            }
        }
    };
}

/// A keyring text file (the crate docs give the format), for a Kubernetes secret key
/// mounted as one file. Reloaded when the file changes.
pub struct KeyFile(Reloading<FileSource>);

/// A directory of key files, one per key id, and a `primary` file naming the primary: a
/// Kubernetes secret mounted as a directory. Reloaded when the files change.
pub struct KeyDirectory(Reloading<DirectorySource>);

reloading_provider!(KeyFile, FileSource, "file");
reloading_provider!(KeyDirectory, DirectorySource, "directory");
