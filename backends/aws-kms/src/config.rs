//! What an AWS KMS key source names, and its text form.

use std::time::Duration;

use pci_vault::{Error, KeyId, Result};

/// Where the AWS KMS provider finds its key and how it calls KMS.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct AwsKmsConfig {
    /// The KMS key that wraps new data keys: a key id, a key ARN, an alias
    /// (`alias/NAME`) or an alias ARN. Resolved once at open to the key's id, which
    /// records carry.
    pub key: String,
    /// Ids of earlier KMS keys that only unwrap records sealed before a rotation.
    pub previous: Vec<KeyId>,
    /// The AWS region; `None` reads `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// Another endpoint than `https://kms.{region}.amazonaws.com` (a VPC endpoint, or a
    /// test server). Plain `http://` only on a loopback address.
    pub endpoint: Option<String>,
    /// The profile of the shared credentials file, when no credentials are in the
    /// environment; `None` reads `AWS_PROFILE`, then `default`.
    pub profile: Option<String>,
    /// How long one request may take, connection included.
    pub timeout: Duration,
    /// How many times a request that failed for a transient reason (a timeout, a refused
    /// connection, throttling, a 5xx answer) is sent again, 0–5. Each retry is logged;
    /// the last failure is the error.
    pub retries: u32,
}

const SYNTAX: &str = "an aws-kms key source is aws-kms:key=KEY-ID|ARN|alias/NAME[;region=REGION]\
                      [;endpoint=URL][;previous=KEY-ID,KEY-ID][;profile=NAME][;timeout-ms=N][;retries=N]";

impl AwsKmsConfig {
    /// Default of [`AwsKmsConfig::timeout`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default of [`AwsKmsConfig::retries`].
    pub const DEFAULT_RETRIES: u32 = 2;

    /// A configuration of `key`, every other option at its default.
    pub fn new(key: impl Into<String>) -> Self {
        AwsKmsConfig {
            key: key.into(),
            previous: Vec::new(),
            region: None,
            endpoint: None,
            profile: None,
            timeout: Self::DEFAULT_TIMEOUT,
            retries: Self::DEFAULT_RETRIES,
        }
    }

    /// Parses the parameters of an `aws-kms:` key source: `;`-separated `name=value` pairs
    /// `key` (required), `region`, `endpoint`, `previous` (comma-separated key ids),
    /// `profile`, `timeout-ms` (1–60000) and `retries` (0–5).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown, repeated or missing parameter or a malformed
    /// value; the message never repeats the text.
    pub fn parse(params: &str) -> Result<Self> {
        let mut config = AwsKmsConfig::new(String::new());
        let mut seen = Vec::new();
        for pair in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').ok_or(Error::InvalidArgument(SYNTAX))?;
            let (name, value) = (name.trim(), value.trim());
            if value.is_empty() || seen.contains(&name) {
                return Err(Error::InvalidArgument(SYNTAX));
            }
            seen.push(name);
            match name {
                "key" => config.key = check_key(value)?,
                "region" => config.region = Some(check_region(value)?),
                "endpoint" => config.endpoint = Some(value.to_owned()),
                "profile" => config.profile = Some(value.to_owned()),
                "previous" => {
                    config.previous = value
                        .split(',')
                        .map(|id| KeyId::new(id.trim()))
                        .collect::<Result<_>>()?;
                }
                "timeout-ms" => {
                    let ms = value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=60_000).contains(n))
                        .ok_or(Error::InvalidArgument(
                            "aws-kms timeout-ms is a whole number from 1 to 60000",
                        ))?;
                    config.timeout = Duration::from_millis(ms);
                }
                "retries" => {
                    config.retries = value.parse::<u32>().ok().filter(|n| *n <= 5).ok_or(
                        Error::InvalidArgument("aws-kms retries is a whole number from 0 to 5"),
                    )?;
                }
                _ => return Err(Error::InvalidArgument(SYNTAX)),
            }
        }
        if config.key.is_empty() {
            return Err(Error::InvalidArgument(SYNTAX));
        }
        Ok(config)
    }

    /// The source for logs: `aws-kms (key K, region R, N previous)`.
    pub fn describe(&self) -> String {
        format!(
            "aws-kms (key {}, region {}, {} previous)",
            self.key,
            self.region.as_deref().unwrap_or("from the environment"),
            self.previous.len()
        )
    }
}

/// A key id, ARN or alias: printable ASCII without spaces, at most 2048 characters (the
/// KMS limit).
fn check_key(value: &str) -> Result<String> {
    if value.len() <= 2048 && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(value.to_owned())
    } else {
        Err(Error::InvalidArgument(
            "an aws-kms key is a key id, a key ARN or alias/NAME",
        ))
    }
}

/// A region name: lower-case letters, digits and dashes.
pub(crate) fn check_region(value: &str) -> Result<String> {
    if !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(value.to_owned())
    } else {
        Err(Error::InvalidArgument(
            "an AWS region is lower-case letters, digits and dashes",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_names_every_part() {
        let c = AwsKmsConfig::parse(
            "key=alias/pci-vault; region=eu-central-1;endpoint=http://127.0.0.1:5000;\
             previous=1234abcd-12ab-34cd-56ef-1234567890ab;timeout-ms=500;retries=1",
        )
        .unwrap();
        assert_eq!(c.key, "alias/pci-vault");
        assert_eq!(c.region.as_deref(), Some("eu-central-1"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.previous.len(), 1);
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.retries, 1);
        assert_eq!(
            c.describe(),
            "aws-kms (key alias/pci-vault, region eu-central-1, 1 previous)"
        );
        for bad in [
            "",
            "region=eu-west-1",
            "key=a;key=b",
            "key=a;colour=red",
            "key=a b",
            "key=a;region=EU",
            "key=a;retries=6",
            "key=a;timeout-ms=0",
            "key=a;previous=x y",
        ] {
            assert_eq!(
                AwsKmsConfig::parse(bad).unwrap_err().code(),
                pci_vault::ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
    }
}
