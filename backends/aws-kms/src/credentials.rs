//! AWS credentials: the chain of sources this client reads, in order.
//!
//! 1. The environment: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with
//!    `AWS_SESSION_TOKEN` when set).
//! 2. A profile of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`), read again for every request. The profile is the configured
//!    one, else `AWS_PROFILE`, else `default`. A named profile must be there; when no
//!    profile is named, a missing file or a file without `[default]` keys passes to the
//!    next source.
//! 3. Web identity: `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE` (IAM roles for
//!    Kubernetes service accounts), exchanged with STS `AssumeRoleWithWebIdentity` for
//!    temporary credentials that are cached until shortly before they expire.
//!
//! This is the order of the AWS SDK for Rust's default chain (`aws-config`); the Java and
//! PHP SDKs try web identity before the credentials file. Instance metadata (IMDS),
//! container (ECS, EKS Pod Identity) credentials and `credential_process` are not
//! fetched: where those are needed, a process outside the vault (an agent, a sidecar)
//! writes the shared credentials file.

use std::path::PathBuf;

use aws_credential_types::Credentials;
use pci_vault::Result;
use zeroize::Zeroizing;

use crate::client::{EndpointOf, check_endpoint};
use crate::environment::AwsEnvironment;
use crate::web_identity::WebIdentity;

/// Why no credentials could be given for a request.
#[derive(Debug, Clone)]
pub(crate) struct CredentialError {
    /// Whether trying again may succeed (STS unreachable or busy).
    pub(crate) transient: bool,
    /// The message, naming the source; never a secret.
    pub(crate) message: String,
}

/// The sources of credentials, read from one [`AwsEnvironment`] when the client is built.
#[derive(Debug)]
pub(crate) struct CredentialChain {
    environment: Option<Credentials>,
    profile: String,
    /// Whether the profile was named (configuration or `AWS_PROFILE`) rather than the
    /// implicit `default`.
    profile_named: bool,
    credentials_file: Option<PathBuf>,
    web_identity: WebIdentitySource,
}

#[derive(Debug)]
enum WebIdentitySource {
    Absent,
    /// One of the two variables is set without the other: the variable missing.
    Incomplete(&'static str),
    Configured(Box<WebIdentity>),
}

impl CredentialChain {
    /// The chain `environment` configures, for a client of `region`.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an `AWS_ENDPOINT_URL_STS` that is not an https:// endpoint
    /// (http:// on loopback).
    pub(crate) fn new(
        environment: &AwsEnvironment,
        profile: Option<&str>,
        region: &str,
    ) -> Result<Self> {
        let named = profile
            .map(str::to_owned)
            .or_else(|| environment.get("AWS_PROFILE").map(str::to_owned));
        let credentials_file = environment
            .get("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| {
                environment
                    .get("HOME")
                    .map(|h| PathBuf::from(h).join(".aws/credentials"))
            });
        let web_identity = match (
            environment.get("AWS_ROLE_ARN"),
            environment.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
        ) {
            (None, None) => WebIdentitySource::Absent,
            (Some(_), None) => WebIdentitySource::Incomplete("AWS_WEB_IDENTITY_TOKEN_FILE"),
            (None, Some(_)) => WebIdentitySource::Incomplete("AWS_ROLE_ARN"),
            (Some(role), Some(token_file)) => {
                let endpoint = match environment.get("AWS_ENDPOINT_URL_STS") {
                    Some(url) => check_endpoint(url, EndpointOf::Sts)?.0,
                    None => format!("https://sts.{region}.amazonaws.com/"),
                };
                let session_name = environment
                    .get("AWS_ROLE_SESSION_NAME")
                    .map(str::to_owned)
                    .unwrap_or_else(default_session_name);
                WebIdentitySource::Configured(Box::new(WebIdentity::new(
                    role.to_owned(),
                    PathBuf::from(token_file),
                    session_name,
                    endpoint,
                )))
            }
        };
        Ok(CredentialChain {
            environment: from_env(environment),
            profile_named: named.is_some(),
            profile: named.unwrap_or_else(|| "default".to_owned()),
            credentials_file,
            web_identity,
        })
    }

    /// The credentials to sign the next request with: the first source of the chain that
    /// has them.
    pub(crate) async fn resolve(
        &self,
        http: &reqwest::Client,
    ) -> std::result::Result<Credentials, CredentialError> {
        if let Some(credentials) = &self.environment {
            return Ok(credentials.clone());
        }
        if let Some(credentials) =
            self.read_credentials_file()
                .map_err(|message| CredentialError {
                    transient: false,
                    message,
                })?
        {
            return Ok(credentials);
        }
        match &self.web_identity {
            WebIdentitySource::Configured(web_identity) => web_identity.credentials(http).await,
            WebIdentitySource::Incomplete(missing) => Err(CredentialError {
                transient: false,
                message: format!(
                    "web identity credentials need both AWS_ROLE_ARN and \
                     AWS_WEB_IDENTITY_TOKEN_FILE; {missing} is not set"
                ),
            }),
            WebIdentitySource::Absent => Err(CredentialError {
                transient: false,
                message: NONE_FOUND.to_owned(),
            }),
        }
    }

    /// The profile's credentials; `None` when the chain passes on to web identity (no file,
    /// or no `[default]` keys, and no profile named).
    fn read_credentials_file(&self) -> std::result::Result<Option<Credentials>, String> {
        let profile = &self.profile;
        let Some(path) = &self.credentials_file else {
            if self.profile_named {
                return Err(format!(
                    "AWS profile {profile:?} is configured, but there is no credentials file \
                     (set AWS_SHARED_CREDENTIALS_FILE or HOME)"
                ));
            }
            return Ok(None);
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.profile_named => {
                return Ok(None);
            }
            Err(e) => {
                return Err(format!(
                    "cannot read the AWS credentials file {} (profile {profile:?}): {}",
                    path.display(),
                    e.kind()
                ));
            }
        };
        match from_profile(&text, profile) {
            Some(credentials) => Ok(Some(credentials)),
            None if !self.profile_named => Ok(None),
            None => Err(format!(
                "the AWS credentials file {} has no access key and secret for profile {profile:?}",
                path.display()
            )),
        }
    }
}

/// `pci-vault-` and the time in milliseconds, as the AWS SDKs name a session nobody named.
fn default_session_name() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("pci-vault-{millis}")
}

const NONE_FOUND: &str = "no AWS credentials: set AWS_ACCESS_KEY_ID and \
    AWS_SECRET_ACCESS_KEY, give a profile in the shared credentials file, or set AWS_ROLE_ARN \
    and AWS_WEB_IDENTITY_TOKEN_FILE for web identity (instance and container credentials are \
    not fetched by this client)";

fn from_env(environment: &AwsEnvironment) -> Option<Credentials> {
    Some(Credentials::new(
        environment.get("AWS_ACCESS_KEY_ID")?,
        environment.get("AWS_SECRET_ACCESS_KEY")?,
        environment.get("AWS_SESSION_TOKEN").map(str::to_owned),
        None,
        "environment",
    ))
}

/// The credentials of `[profile]` in an INI credentials file.
fn from_profile(text: &str, profile: &str) -> Option<Credentials> {
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            match key.trim() {
                "aws_access_key_id" => id = Some(value.to_owned()),
                "aws_secret_access_key" => secret = Some(Zeroizing::new(value.to_owned())),
                "aws_session_token" => token = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    let secret = secret?;
    Some(Credentials::new(
        id?,
        secret.as_str(),
        token,
        None,
        "profile",
    ))
}

#[cfg(test)]
mod tests {
    use super::from_profile;

    #[test]
    fn a_profile_is_read_from_its_section_only() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n\
                    # comment\n[ops]\naws_access_key_id=C\naws_secret_access_key=s3cr3t-value-9\n\
                    aws_session_token=E\n";
        let ops = from_profile(text, "ops").unwrap();
        assert_eq!(ops.access_key_id(), "C");
        assert_eq!(ops.secret_access_key(), "s3cr3t-value-9");
        assert_eq!(ops.session_token(), Some("E"));
        let default = from_profile(text, "default").unwrap();
        assert_eq!(default.access_key_id(), "A");
        assert_eq!(default.session_token(), None);
        assert!(from_profile(text, "absent").is_none());
        assert!(!format!("{ops:?}").contains("s3cr3t"));
    }
}
