//! The environment variables the client reads, as a value: the process's own in
//! production, a filled-in one in tests and tools that must not depend on the process.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

/// The AWS settings the KMS client takes from its environment: region, static keys, the
/// shared credentials file and profile, and web identity (`AWS_ROLE_ARN`,
/// `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_SESSION_NAME`, `AWS_ENDPOINT_URL_STS`).
///
/// [`AwsEnvironment::from_process`] reads the variables named in
/// [`AwsEnvironment::VARIABLES`] once, when a client is built; the files they name are
/// read again when they are used. An empty value counts as unset. Values are wiped when
/// dropped, and `Debug` shows which variables are set, never a value.
#[derive(Clone, Default)]
pub struct AwsEnvironment {
    vars: BTreeMap<String, Zeroizing<String>>,
}

impl AwsEnvironment {
    /// Every variable [`AwsEnvironment::from_process`] reads.
    pub const VARIABLES: &'static [&'static str] = &[
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "HOME",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_SESSION_NAME",
        "AWS_ENDPOINT_URL_STS",
    ];

    /// The variables of [`AwsEnvironment::VARIABLES`] as this process has them now.
    pub fn from_process() -> Self {
        let mut environment = AwsEnvironment::default();
        for name in Self::VARIABLES {
            if let Ok(value) = std::env::var(name) {
                environment.set(name, value);
            }
        }
        environment
    }

    /// An environment without any variable: no region, no credentials.
    pub fn empty() -> Self {
        AwsEnvironment::default()
    }

    /// Sets `name` to `value` (an empty value unsets it) and returns the environment.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`; an empty value unsets it.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = Zeroizing::new(value.into());
        if value.is_empty() {
            self.vars.remove(name);
        } else {
            self.vars.insert(name.to_owned(), value);
        }
    }

    /// The value of `name`, if it is set and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.as_str())
    }
}

impl fmt::Debug for AwsEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsEnvironment")
            .field("set", &self.vars.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::AwsEnvironment;

    #[test]
    fn debug_names_the_variables_and_never_a_value() {
        let env = AwsEnvironment::empty()
            .with("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-9")
            .with("AWS_PROFILE", "");
        assert_eq!(env.get("AWS_SECRET_ACCESS_KEY"), Some("s3cr3t-value-9"));
        assert_eq!(env.get("AWS_PROFILE"), None);
        let debug = format!("{env:?}");
        assert!(debug.contains("AWS_SECRET_ACCESS_KEY"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }
}
