//! Tenants: the deployments that share one vault without seeing each other's sessions.

use std::fmt;
use std::sync::{Arc, LazyLock};

use crate::error::{Error, Result};

/// The tenant a session belongs to: 1–64 characters from `[A-Za-z0-9._-]`.
///
/// Agent-side operations act for one tenant; a session of another tenant answers
/// `NOT_FOUND`. The tenant is bound into the session's cryptography, so a record altered to
/// name another tenant does not open. A deployment with one customer uses
/// [`Tenant::default`], spelled `default`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(Arc<str>);

/// The default tenant, shared so that cloning or defaulting it never allocates.
static DEFAULT: LazyLock<Tenant> = LazyLock::new(|| Tenant(Arc::from("default")));

impl Tenant {
    /// Longest accepted tenant name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks and takes a tenant name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the name is empty, too long or has other characters.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(if name == DEFAULT.as_str() {
                DEFAULT.clone()
            } else {
                Tenant(Arc::from(name))
            })
        } else {
            Err(Error::InvalidArgument(
                "a tenant is 1-64 characters from A-Z a-z 0-9 . _ -",
            ))
        }
    }

    /// The tenant name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The tenant name as text, the form the crypto layer binds.
impl AsRef<str> for Tenant {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Default for Tenant {
    fn default() -> Self {
        DEFAULT.clone()
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tenant({:?})", self.0)
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(Tenant::default().as_str(), "default");
        assert!(Tenant::new("acme-eu.1_x").is_ok());
        for bad in ["", "a b", "a:b", "{x}", "ü", &"t".repeat(65)] {
            assert!(Tenant::new(bad).is_err(), "{bad:?}");
        }
    }
}
