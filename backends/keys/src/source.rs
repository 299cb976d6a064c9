//! The key-source string: one text that names where a deployment's keys are.

use std::path::PathBuf;
use std::str::FromStr;

use pci_vault::{Error, Result};

use crate::KeySource;
use crate::text::shown_path;

const SYNTAX: &str = "a key source is development, env:VAR, file:PATH, dir:PATH, \
                      pkcs11:NAME=VALUE;… or aws-kms:NAME=VALUE;…";

impl KeySource {
    /// Parses a key-source string:
    ///
    /// | text | source |
    /// |---|---|
    /// | `development` | a random key for this process, with a warning |
    /// | `env:VAR` | a keyring text in environment variable `VAR` |
    /// | `file:PATH` | a keyring file, reloaded when it changes |
    /// | `dir:PATH` | a key directory (a Kubernetes secret mount), reloaded when it changes |
    /// | `pkcs11:module=…;token=…;key=…;pin-file=…` | keys in an HSM (feature `pkcs11`) |
    /// | `aws-kms:key=…;region=…` | a key in AWS KMS (feature `aws-kms`) |
    ///
    /// The scheme is case-insensitive; the rest is taken as written. Nothing is read or
    /// connected to until [`KeySource::connect`].
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for anything else, or a malformed part; the message never
    /// repeats the text (it may name a file that holds a PIN).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("development") {
            return Ok(KeySource::Development);
        }
        let (scheme, rest) = text.split_once(':').ok_or(Error::InvalidArgument(SYNTAX))?;
        let rest = rest.trim();
        let scheme = scheme.trim().to_ascii_lowercase();
        let nonempty = |what: &'static str| {
            if rest.is_empty() {
                Err(Error::InvalidArgument(what))
            } else {
                Ok(rest)
            }
        };
        match scheme.as_str() {
            "env" => KeySource::env(nonempty("env: names an environment variable")?),
            "file" => Ok(KeySource::File(PathBuf::from(nonempty(
                "file: names a keyring file",
            )?))),
            "dir" => Ok(KeySource::Directory(PathBuf::from(nonempty(
                "dir: names a key directory",
            )?))),
            #[cfg(feature = "pkcs11")]
            "pkcs11" => Ok(KeySource::Pkcs11(pci_vault_pkcs11::Pkcs11Config::parse(
                rest,
            )?)),
            #[cfg(feature = "aws-kms")]
            "aws-kms" => Ok(KeySource::AwsKms(pci_vault_aws_kms::AwsKmsConfig::parse(
                rest,
            )?)),
            _ => Err(Error::InvalidArgument(SYNTAX)),
        }
    }

    /// The source for logs, without secrets.
    pub fn describe(&self) -> String {
        match self {
            KeySource::Keyring(ring) => format!("inline keyring (primary {})", ring.primary()),
            KeySource::Env(var) => format!("keyring in variable {var}"),
            KeySource::File(path) => format!("keyring file {}", shown_path(path)),
            KeySource::Directory(path) => format!("key directory {}", shown_path(path)),
            KeySource::Development => "development key".to_owned(),
            KeySource::Provider(_) => "the host's key provider".to_owned(),
            #[cfg(feature = "pkcs11")]
            KeySource::Pkcs11(config) => config.describe(),
            #[cfg(feature = "aws-kms")]
            KeySource::AwsKms(config) => config.describe(),
        }
    }
}

#[cfg(feature = "pkcs11")]
impl KeySource {
    /// Creates in the HSM the key that a `pkcs11:` source names as its primary (`key=`):
    /// a 256-bit AES key, sensitive, never extractable, for encrypt and decrypt only, made
    /// by the token (its bytes never leave it). For a development token and for operators
    /// without the HSM vendor's tools; `docs/KEYS.md` describes the key ceremony.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a source that is not `pkcs11:`; `KEY_UNAVAILABLE` when the
    /// module, token or PIN fails, or a key with that label exists already.
    pub fn create_hsm_key(&self) -> Result<()> {
        match self {
            KeySource::Pkcs11(config) => pci_vault_pkcs11::create_key(config, &config.key),
            _ => Err(Error::InvalidArgument(
                "only a pkcs11: key source names an HSM key to create",
            )),
        }
    }
}

impl FromStr for KeySource {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        KeySource::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_sources_parse() {
        assert!(matches!(
            KeySource::parse(" Development "),
            Ok(KeySource::Development)
        ));
        assert!(matches!(KeySource::parse("env:KEYS"), Ok(KeySource::Env(v)) if v == "KEYS"));
        assert!(
            matches!(KeySource::parse("FILE:/k"), Ok(KeySource::File(p)) if p == std::path::Path::new("/k"))
        );
        assert!(matches!(
            KeySource::parse("dir:/run/keys"),
            Ok(KeySource::Directory(_))
        ));
        for bad in [
            "",
            "dev",
            "env:",
            "file:",
            "vault:x",
            "env:A=B",
            "env:k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "/path/to/keys",
        ] {
            let error = KeySource::parse(bad).unwrap_err();
            assert_eq!(error.code(), pci_vault::ErrorCode::InvalidArgument, "{bad}");
            assert!(!error.to_string().contains("AAECAwQF"), "{error}");
        }
    }
}
