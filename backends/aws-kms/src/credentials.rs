//! AWS credentials from the environment or the shared credentials file.
//!
//! This client reads the two static sources of the standard chain: the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and a profile of the
//! shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`). It
//! does not fetch instance (IMDS), container (ECS) or web-identity credentials, nor run
//! `credential_process`: where those are needed, a process outside the vault (an agent,
//! a sidecar) writes the shared credentials file, which is read again for every request.

use std::path::PathBuf;

use aws_credential_types::Credentials;
use pci_vault::{Error, Result};
use zeroize::Zeroizing;

/// The credentials to sign the next request with.
pub(crate) fn resolve(profile: Option<&str>) -> Result<Credentials> {
    if let Some(credentials) = from_env() {
        return Ok(credentials);
    }
    let profile = profile
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .unwrap_or_else(|| "default".to_owned());
    let path = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws/credentials"))
        });
    let Some(path) = path else {
        return Err(none_found());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(none_found()),
        Err(e) => {
            return Err(Error::key_unavailable(format!(
                "cannot read the AWS credentials file {}: {}",
                path.display(),
                e.kind()
            )));
        }
    };
    from_profile(&text, &profile).ok_or_else(|| {
        Error::key_unavailable(format!(
            "the AWS credentials file {} has no access key and secret for profile {profile:?}",
            path.display()
        ))
    })
}

fn none_found() -> Error {
    Error::key_unavailable(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give a \
         profile in the shared credentials file (instance, container and web-identity \
         credentials are not fetched by this client)",
    )
}

fn from_env() -> Option<Credentials> {
    let id = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
    let secret = Zeroizing::new(std::env::var("AWS_SECRET_ACCESS_KEY").ok()?);
    let token = std::env::var("AWS_SESSION_TOKEN").ok();
    Some(Credentials::new(
        id,
        secret.as_str(),
        token,
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
