//! Agent API keys: `Authorization: Bearer <key>`, each key bound to a tenant.
//!
//! Only SHA-256 digests of the keys are kept. A presented key is hashed and compared with
//! every configured digest in constant time (no early exit, no length leak), so the time
//! of a check says nothing about which key, or how much of one, matched.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pci_vault::{Tenant, Vault};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::ApiError;
use crate::state::AppState;

/// Shortest accepted API key, in characters.
pub const MIN_KEY_LEN: usize = 16;
/// Longest accepted API key, in characters.
pub const MAX_KEY_LEN: usize = 256;

/// The configured API keys, as digests bound to tenants.
#[derive(Clone)]
pub struct ApiKeys(Vec<(Tenant, [u8; 32])>);

/// Why an API key list was refused. Names the entry by position, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("API key entry {entry}: {reason}")]
pub struct ApiKeysError {
    /// 1-based position of the entry in the list.
    pub entry: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ApiKeys {
    /// Parses a comma-separated list: `key` acts for the default tenant, `tenant=key` for
    /// that tenant. A key is 16–256 visible ASCII characters without `,` or `=`
    /// (e.g. `openssl rand -hex 32`).
    ///
    /// # Errors
    /// [`ApiKeysError`] for an empty list, a malformed entry, a bad tenant name or a key
    /// given twice.
    pub fn parse(text: &str) -> Result<Self, ApiKeysError> {
        let mut keys: Vec<(Tenant, [u8; 32])> = Vec::new();
        for (i, entry) in text.split(',').enumerate() {
            let entry = entry.trim();
            let error = |reason| ApiKeysError {
                entry: i + 1,
                reason,
            };
            let (tenant, key) = match entry.split_once('=') {
                Some((tenant, key)) => (
                    Tenant::new(tenant.trim())
                        .map_err(|_| error("a tenant is 1-64 characters from A-Z a-z 0-9 . _ -"))?,
                    key.trim(),
                ),
                None => (Tenant::default(), entry),
            };
            if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
                return Err(error("a key is 16-256 characters"));
            }
            if !key.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
                return Err(error("a key is visible ASCII without ',' or '='"));
            }
            let digest = digest(key);
            if keys.iter().any(|(_, d)| *d == digest) {
                return Err(error("the same key is given twice"));
            }
            keys.push((tenant, digest));
        }
        Ok(ApiKeys(keys))
    }

    /// One random key for the default tenant, for development. The key is returned once,
    /// to be printed at start; only its digest is kept.
    pub fn development() -> (Self, SecretString) {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        // The OS random source failing is not recoverable; the key stays unusable then.
        if getrandom::fill(bytes.as_mut_slice()).is_err() {
            tracing::error!("the OS random source failed; the development API key is unusable");
        }
        let key = URL_SAFE_NO_PAD.encode(bytes.as_slice());
        let keys = ApiKeys(vec![(Tenant::default(), digest(&key))]);
        (keys, SecretString::from(key))
    }

    /// The tenant `presented` acts for, or `None` if it is no configured key.
    pub fn authenticate(&self, presented: &str) -> Option<&Tenant> {
        let digest = digest(presented);
        let mut found = 0u32;
        for (i, (_, known)) in self.0.iter().enumerate() {
            let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
            found.conditional_assign(&position, known.ct_eq(&digest));
        }
        let index = usize::try_from(found).ok()?.checked_sub(1)?;
        self.0.get(index).map(|(tenant, _)| tenant)
    }

    /// The tenants the keys act for, each once, in the order of the list.
    pub fn tenants(&self) -> Vec<Tenant> {
        let mut tenants: Vec<Tenant> = Vec::new();
        for (tenant, _) in &self.0 {
            if !tenants.contains(tenant) {
                tenants.push(tenant.clone());
            }
        }
        tenants
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
            .field("keys", &self.0.len())
            .field("tenants", &self.tenants())
            .finish_non_exhaustive()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key of an `Authorization: Bearer <key>` header value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// An authenticated agent: the vault acting for the tenant of the presented API key.
#[derive(Debug)]
pub struct Agent(pub Vault);

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or(ApiError::Unauthorized)?;
        let tenant = state
            .api_keys()
            .authenticate(key)
            .ok_or(ApiError::Unauthorized)?;
        Ok(Agent(state.vault().for_tenant(tenant.clone())))
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
