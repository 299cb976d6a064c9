use std::fmt;

/// Why key material could not be loaded. The message names the source (a variable or a
/// path) and the entry, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key material from {source_name}: {reason}")]
pub struct LoadError {
    source_name: String,
    reason: String,
}

impl LoadError {
    pub(crate) fn new(source_name: impl fmt::Display, reason: impl Into<String>) -> Self {
        LoadError {
            source_name: source_name.to_string(),
            reason: reason.into(),
        }
    }

    /// The same error, attributed to `source_name`.
    pub(crate) fn in_source(mut self, source_name: impl fmt::Display) -> Self {
        self.source_name = source_name.to_string();
        self
    }

    /// What went wrong, without the source.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl From<LoadError> for pci_vault::Error {
    fn from(e: LoadError) -> Self {
        pci_vault::Error::key_unavailable(e.to_string())
    }
}
