//! Agent API keys: `Authorization: Bearer <key>`, each key bound to a tenant and named by
//! a label that the logs and audit events carry instead of the key.
//!
//! Only SHA-256 digests of the keys are kept. A presented key is hashed and compared with
//! every configured digest in constant time (no early exit, no length leak), so the time
//! of a check says nothing about which key, or how much of one, matched.
//!
//! Keys come from `--api-keys` (fixed for the life of the process) or from
//! `--api-keys-file`, which [`ApiKeySet::reload`] reads again when its content changes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pci_vault::{Tenant, Vault};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::context::{ClientAddr, record_api_key};
use crate::error::ApiError;
use crate::state::AppState;
use crate::watch::WatchedFiles;

/// Shortest accepted API key, in characters.
pub const MIN_KEY_LEN: usize = 16;
/// Longest accepted API key, in characters.
pub const MAX_KEY_LEN: usize = 256;
/// Longest label, in characters.
pub const MAX_LABEL_LEN: usize = 64;
/// Most keys a list or file may hold.
pub const MAX_KEYS: usize = 1024;

/// One configured key: its tenant, its label and the digest of the key.
#[derive(Clone)]
pub struct ApiKey {
    tenant: Tenant,
    label: String,
    digest: [u8; 32],
}

impl ApiKey {
    /// The tenant the key acts for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The key's label: what logs and audit events name it by.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// The configured API keys, as digests bound to tenants and labels.
#[derive(Clone)]
pub struct ApiKeys(Vec<ApiKey>);

/// Why an API key list or file was refused. Names the entry (in a list) or the line (in a
/// file) by number, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("API key {place} {entry}: {reason}")]
pub struct ApiKeysError {
    /// `entry` in a comma-separated list, `line` in a file.
    pub place: &'static str,
    /// 1-based position of the entry in the list, or line number in the file.
    pub entry: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Whether `label` is 1–64 characters of `A-Z a-z 0-9 . _ -`.
pub fn is_valid_label(label: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A tenant-bound key `[tenant=]key` read from an entry or line.
fn tenant_and_key(text: &str) -> Result<(Tenant, &str), &'static str> {
    let (tenant, key) = match text.split_once('=') {
        Some((tenant, key)) => (
            Tenant::new(tenant.trim())
                .map_err(|_| "a tenant is 1-64 characters from A-Z a-z 0-9 . _ -")?,
            key.trim(),
        ),
        None => (Tenant::default(), text),
    };
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        return Err("a key is 16-256 characters");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
        return Err("a key is visible ASCII without ',' or '='");
    }
    Ok((tenant, key))
}

impl ApiKeys {
    /// Parses a comma-separated list: `key` acts for the default tenant, `tenant=key` for
    /// that tenant. A key is 16–256 visible ASCII characters without `,` or `=`
    /// (e.g. `openssl rand -hex 32`). The keys are labelled `key-1`, `key-2`, … in order.
    ///
    /// # Errors
    /// [`ApiKeysError`] for an empty list, a malformed entry, a bad tenant name or a key
    /// given twice.
    pub fn parse(text: &str) -> Result<Self, ApiKeysError> {
        let mut keys = ApiKeys(Vec::new());
        for (i, entry) in text.split(',').enumerate() {
            let error = |reason| ApiKeysError {
                place: "entry",
                entry: i + 1,
                reason,
            };
            let (tenant, key) = tenant_and_key(entry.trim()).map_err(error)?;
            keys.push(tenant, format!("key-{}", i + 1), key)
                .map_err(error)?;
        }
        Ok(keys)
    }

    /// Parses an API key file: one key a line, `LABEL:KEY` or `LABEL:TENANT=KEY`; blank
    /// lines and lines starting with `#` are ignored. A label is 1–64 characters of
    /// `A-Z a-z 0-9 . _ -`, given once; a key as in [`ApiKeys::parse`].
    ///
    /// # Errors
    /// [`ApiKeysError`] naming the first malformed line by number (never its content), or
    /// line 0 for a file without keys.
    pub fn parse_file(text: &str) -> Result<Self, ApiKeysError> {
        let mut keys = ApiKeys(Vec::new());
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |reason| ApiKeysError {
                place: "line",
                entry: i + 1,
                reason,
            };
            let (label, rest) = line
                .split_once(':')
                .ok_or(error("a line is LABEL:KEY or LABEL:TENANT=KEY"))?;
            let label = label.trim();
            if !is_valid_label(label) {
                return Err(error("a label is 1-64 characters from A-Z a-z 0-9 . _ -"));
            }
            let (tenant, key) = tenant_and_key(rest.trim()).map_err(error)?;
            keys.push(tenant, label.to_owned(), key).map_err(error)?;
        }
        if keys.is_empty() {
            return Err(ApiKeysError {
                place: "line",
                entry: 0,
                reason: "the file holds no key",
            });
        }
        Ok(keys)
    }

    fn push(&mut self, tenant: Tenant, label: String, key: &str) -> Result<(), &'static str> {
        if self.0.len() == MAX_KEYS {
            return Err("at most 1024 keys");
        }
        let digest = digest(key);
        if self.0.iter().any(|k| k.digest == digest) {
            return Err("the same key is given twice");
        }
        if self.0.iter().any(|k| k.label == label) {
            return Err("the same label is given twice");
        }
        self.0.push(ApiKey {
            tenant,
            label,
            digest,
        });
        Ok(())
    }

    /// One random key for the default tenant, labelled `development`. The key is returned
    /// once, to be printed at start; only its digest is kept.
    pub fn development() -> (Self, SecretString) {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        // The OS random source failing is not recoverable: no key is registered then (a key
        // of 32 zero bytes would be one anybody can present).
        if getrandom::fill(bytes.as_mut_slice()).is_err() {
            tracing::error!("the OS random source failed; there is no development API key");
            return (ApiKeys(Vec::new()), SecretString::from("(none)"));
        }
        let key = URL_SAFE_NO_PAD.encode(bytes.as_slice());
        let keys = ApiKeys(vec![ApiKey {
            tenant: Tenant::default(),
            label: "development".to_owned(),
            digest: digest(&key),
        }]);
        (keys, SecretString::from(key))
    }

    /// The configured key `presented` is, or `None`. Every digest is compared, in constant
    /// time.
    pub fn identify(&self, presented: &str) -> Option<&ApiKey> {
        let digest = digest(presented);
        let mut found = 0u32;
        for (i, known) in self.0.iter().enumerate() {
            let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
            found.conditional_assign(&position, known.digest.ct_eq(&digest));
        }
        let index = usize::try_from(found).ok()?.checked_sub(1)?;
        self.0.get(index)
    }

    /// Whether `key` is still one of these keys, acting for the same tenant.
    pub fn holds(&self, key: &ApiKey) -> bool {
        self.0
            .iter()
            .any(|known| bool::from(known.digest.ct_eq(&key.digest)) && known.tenant == key.tenant)
    }

    /// The tenant `presented` acts for, or `None` if it is no configured key.
    pub fn authenticate(&self, presented: &str) -> Option<&Tenant> {
        self.identify(presented).map(ApiKey::tenant)
    }

    /// The tenants the keys act for, each once, in the order of the list.
    pub fn tenants(&self) -> Vec<Tenant> {
        let mut tenants: Vec<Tenant> = Vec::new();
        for key in &self.0 {
            if !tenants.contains(&key.tenant) {
                tenants.push(key.tenant.clone());
            }
        }
        tenants
    }

    /// The labels, in order.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(ApiKey::label)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("labels", &self.labels().collect::<Vec<_>>())
            .field("tenants", &self.tenants())
            .finish_non_exhaustive()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Largest API key file accepted.
const MAX_FILE_LEN: u64 = 256 * 1024;

/// Why the API key file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyFileError {
    /// The file cannot be read (the I/O error kind only).
    #[error("{path}: cannot be read: {kind}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
    /// The file is not UTF-8, too large, or malformed.
    #[error("{path}: {reason}")]
    Content {
        /// The file.
        path: String,
        /// What is wrong, by line number.
        reason: String,
    },
}

/// The keys in use: fixed, or read from a file and swapped when its content changes.
pub struct ApiKeySet {
    current: ArcSwap<ApiKeys>,
    file: Option<Mutex<WatchedFiles>>,
}

impl ApiKeySet {
    /// Keys that never change.
    pub fn fixed(keys: ApiKeys) -> Self {
        ApiKeySet {
            current: ArcSwap::from_pointee(keys),
            file: None,
        }
    }

    /// The keys of `path`, read now.
    ///
    /// # Errors
    /// [`ApiKeyFileError`] when the file cannot be read or is malformed.
    pub fn from_file(path: &Path) -> Result<Self, ApiKeyFileError> {
        let mut watched = WatchedFiles::new(vec![path.to_path_buf()], MAX_FILE_LEN);
        let keys = match watched.changed() {
            Ok(Some(contents)) => parse_file_content(path, contents.first().map(|c| &c[..]))?,
            Ok(None) => unreachable_unchanged(path)?,
            Err(e) => return Err(read_error(path, &e)),
        };
        Ok(ApiKeySet {
            current: ArcSwap::from_pointee(keys),
            file: Some(Mutex::new(watched)),
        })
    }

    /// The keys in use now.
    pub fn current(&self) -> Arc<ApiKeys> {
        self.current.load_full()
    }

    /// Reads the file again if its content changed, and swaps in its keys. Returns `None`
    /// when nothing changed (or the keys are fixed), the outcome otherwise; on an error the
    /// keys in use stay, and the same error is not reported again until the file changes.
    pub fn reload(&self) -> Option<Result<usize, ApiKeyFileError>> {
        let file = self.file.as_ref()?;
        let mut watched = file.lock().unwrap_or_else(|e| e.into_inner());
        let path = watched.paths().first().cloned().unwrap_or_default();
        let outcome = match watched.changed() {
            Ok(None) => return None,
            Ok(Some(contents)) => parse_file_content(&path, contents.first().map(|c| &c[..])),
            Err(e) => Err(read_error(&path, &e)),
        };
        Some(outcome.map(|keys| {
            let count = keys.len();
            self.current.store(Arc::new(keys));
            count
        }))
    }

    /// The file, if the keys come from one.
    pub fn path(&self) -> Option<PathBuf> {
        let file = self.file.as_ref()?;
        let watched = file.lock().unwrap_or_else(|e| e.into_inner());
        watched.paths().first().cloned()
    }
}

impl fmt::Debug for ApiKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeySet")
            .field("keys", &self.current.load())
            .field("file", &self.path())
            .finish()
    }
}

fn unreachable_unchanged(path: &Path) -> Result<ApiKeys, ApiKeyFileError> {
    Err(ApiKeyFileError::Content {
        path: path.display().to_string(),
        reason: "was not read".to_owned(),
    })
}

fn read_error(path: &Path, e: &std::io::Error) -> ApiKeyFileError {
    ApiKeyFileError::Read {
        path: path.display().to_string(),
        kind: e.kind(),
    }
}

fn parse_file_content(path: &Path, content: Option<&[u8]>) -> Result<ApiKeys, ApiKeyFileError> {
    let content_error = |reason: String| ApiKeyFileError::Content {
        path: path.display().to_string(),
        reason,
    };
    let text = std::str::from_utf8(content.unwrap_or_default())
        .map_err(|_| content_error("is not UTF-8 text".to_owned()))?;
    ApiKeys::parse_file(text).map_err(|e| content_error(e.to_string()))
}

/// The key of an `Authorization: Bearer <key>` header value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// An authenticated agent: the vault acting for the tenant of the presented API key, and
/// the key itself, for a long-lived answer to check that it is still configured.
///
/// A missing or wrong key counts against the client's limit of failed authentications
/// (`401`); a client past that limit is answered `429` before its key is looked at. The
/// label of the key is recorded in the request's log span.
#[derive(Debug)]
pub struct Agent(pub Vault, pub Credential);

/// The API key a request was authenticated with (its digest, tenant and label, never the
/// key) and the key set it was found in.
pub struct Credential {
    key: ApiKey,
    keys: Arc<ApiKeySet>,
}

impl Credential {
    /// Whether the key is still configured, for the same tenant: false once a reload of
    /// the API key file removed it or moved it to another tenant.
    pub fn is_current(&self) -> bool {
        self.keys.current().holds(&self.key)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("label", &self.key.label)
            .finish_non_exhaustive()
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = parts
            .extensions
            .get::<ClientAddr>()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0);
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        let keys = state.api_keys().current();
        let found = state
            .auth_failures()
            .authenticate(client, || presented.and_then(|p| keys.identify(p)).cloned());
        match found {
            Ok(key) => {
                record_api_key(key.label());
                let vault = state.vault().for_tenant(key.tenant().clone());
                let keys = Arc::clone(state.api_keys());
                Ok(Agent(vault, Credential { key, keys }))
            }
            Err(e) => {
                let outcome = match e {
                    ApiError::RateLimited { .. } => "rate_limited",
                    _ => "unauthorized",
                };
                state.metrics().auth_failure(outcome);
                tracing::warn!(outcome, "agent authentication failed");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn keys_bind_to_tenants() {
        let keys = ApiKeys::parse(&format!("{A}, acme={B}")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.authenticate(A).unwrap().as_str(), "default");
        assert_eq!(keys.authenticate(B).unwrap().as_str(), "acme");
        assert!(keys.authenticate("cccccccccccccccccccccc").is_none());
        assert!(keys.authenticate("").is_none());
        assert!(keys.authenticate(&A[..20]).is_none());
        let tenants: Vec<String> = keys.tenants().iter().map(|t| t.to_string()).collect();
        assert_eq!(tenants, ["default", "acme"]);
    }

    #[test]
    fn a_key_is_held_while_listed_for_the_same_tenant() {
        let before = ApiKeys::parse(&format!("{A}, acme={B}")).unwrap();
        let a = before.identify(A).unwrap().clone();
        let b = before.identify(B).unwrap().clone();
        assert!(before.holds(&a) && before.holds(&b));
        let after = ApiKeys::parse(&format!("other={A}")).unwrap();
        assert!(!after.holds(&a), "moved to another tenant");
        assert!(!after.holds(&b), "removed");
    }

    #[test]
    fn bad_lists_name_the_entry_not_the_key() {
        let secret = "s3cr3t-s3cr3t-s3cr3t";
        for (text, entry) in [
            ("", 1),
            (&format!("{A},"), 2),
            ("short", 1),
            (&format!("{A},bad tenant={B}"), 2),
            (&format!("{A},{A}"), 2),
            (&format!("x={secret}=x"), 1),
            (&format!("{secret} {secret}"), 1),
        ] {
            let err = ApiKeys::parse(text).unwrap_err();
            assert_eq!(err.entry, entry, "{text}");
            assert_eq!(err.place, "entry");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn list_keys_are_labelled_by_position() {
        let keys = ApiKeys::parse(&format!("{A}, acme={B}")).unwrap();
        assert_eq!(keys.identify(A).unwrap().label(), "key-1");
        assert_eq!(keys.identify(B).unwrap().label(), "key-2");
    }

    #[test]
    fn files_have_labels_comments_and_tenants() {
        let text = format!("# agents\n\nbot-1:{A}\n  ops.team : acme={B}  \n");
        let keys = ApiKeys::parse_file(&text).unwrap();
        assert_eq!(keys.len(), 2);
        let a = keys.identify(A).unwrap();
        assert_eq!((a.label(), a.tenant().as_str()), ("bot-1", "default"));
        let b = keys.identify(B).unwrap();
        assert_eq!((b.label(), b.tenant().as_str()), ("ops.team", "acme"));
        // A key may hold ':' (only the first one separates the label).
        let keys = ApiKeys::parse_file("x:abc:defghijklmnopqrstu").unwrap();
        assert!(keys.identify("abc:defghijklmnopqrstu").is_some());
    }

    #[test]
    fn bad_files_name_the_line_not_its_content() {
        let secret = "s3cr3t-s3cr3t-s3cr3t";
        for (text, line) in [
            (format!("a:{A}\n{secret}"), 2),
            (format!("a:{A}\nbad label:{B}"), 2),
            (format!("a:{A}\n\n# c\na:{B}"), 4),
            (format!("a:{A}\nb:{A}"), 2),
            (format!(":{secret}"), 1),
            (format!("{}:{secret}", "l".repeat(65)), 1),
            ("a:short".to_owned(), 1),
            (format!("a:bad tenant={secret}"), 1),
            ("# nothing\n\n".to_owned(), 0),
        ] {
            let err = ApiKeys::parse_file(&text).unwrap_err();
            assert_eq!((err.place, err.entry), ("line", line), "{text}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn development_key_authenticates_and_never_prints() {
        let (keys, key) = ApiKeys::development();
        use secrecy::ExposeSecret;
        assert_eq!(key.expose_secret().len(), 43);
        assert!(keys.authenticate(key.expose_secret()).is_some());
        assert!(!format!("{keys:?}").contains(key.expose_secret()));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
