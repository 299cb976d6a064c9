//! Tools the binary runs instead of the server.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use pci_vault::SessionId;
use pci_vault_keys::KeySource;

use crate::config::read_audit_key;

/// `pci-vault-server audit-ref`: prints, one a line, `SESSION_REF` for each session id
/// (from `ids`, or one a line from standard input), the reference the session's audit
/// events carry under the audit key of `key_file` ([`pci_vault::session_ref`]). A malformed
/// id prints an error naming its position, never the id, and the exit status is 1.
#[expect(clippy::print_stderr, reason = "a command-line tool's errors")]
pub fn audit_ref(key_file: Option<&Path>, ids: &[String]) -> ExitCode {
    let Some(key_file) = key_file else {
        eprintln!("audit-ref needs --audit-key-file (or PCI_VAULT_AUDIT_KEY_FILE)");
        return ExitCode::from(2);
    };
    let key = match read_audit_key(key_file) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Ok(key) = <&[u8; 32]>::try_from(key.as_slice()) else {
        return ExitCode::from(2);
    };
    let ids: Vec<String> = if ids.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        ids.to_vec()
    };
    let mut status = ExitCode::SUCCESS;
    let mut out = std::io::stdout().lock();
    for (i, id) in ids.iter().enumerate() {
        match SessionId::parse(id.trim()) {
            Ok(id) => {
                let _ = writeln!(out, "{}", pci_vault::session_ref(key, &id));
            }
            Err(_) => {
                eprintln!("session id {}: not 43 characters of base64url", i + 1);
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// `pci-vault-server hsm-create-key`: creates the primary key of the `pkcs11:` key source
/// `source` ([`KeySource::create_hsm_key`]). Errors name what failed, never the PIN.
#[expect(clippy::print_stderr, reason = "a command-line tool's errors")]
pub fn hsm_create_key(source: Option<&str>) -> ExitCode {
    let Some(source) = source else {
        eprintln!("hsm-create-key needs --key-source pkcs11:… (or PCI_VAULT_KEY_SOURCE)");
        return ExitCode::from(2);
    };
    let created = KeySource::parse(source).and_then(|source| {
        source.create_hsm_key()?;
        Ok(source.describe())
    });
    match created {
        Ok(described) => {
            let _ = writeln!(
                std::io::stdout().lock(),
                "created the primary key of {described}"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
