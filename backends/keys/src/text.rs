//! The keyring text format: `id:base64-key` entries, the first one primary.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault::{KeyEncryptionKey, KeyId, Keyring};
use zeroize::Zeroizing;

use crate::LoadError;

/// Parses a keyring text: `id:key` entries separated by commas or new lines, the first one
/// primary; `#` starts a comment line. Keys are 32 bytes of standard base64.
///
/// # Errors
/// [`LoadError`] naming the entry (by position and id) and the problem; never the key.
pub fn parse_keyring(text: &str) -> Result<Keyring, LoadError> {
    let entries = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    let mut keys = Vec::new();
    for (n, entry) in entries.enumerate() {
        let position = n + 1;
        let Some((id, key)) = entry.split_once(':') else {
            return Err(LoadError::new(
                "keyring",
                format!("entry {position} is not of the form id:base64-key"),
            ));
        };
        let id = KeyId::new(id.trim()).map_err(|_| {
            LoadError::new("keyring", format!("entry {position} has an invalid key id (1-64 characters of A-Z a-z 0-9 . _ : / -)"))
        })?;
        let kek = decode_key(key.trim()).map_err(|reason| {
            LoadError::new(
                "keyring",
                format!("entry {position} (key id {:?}): {reason}", id.as_str()),
            )
        })?;
        keys.push((id, kek));
    }
    if keys.is_empty() {
        return Err(LoadError::new("keyring", "has no keys"));
    }
    Keyring::primary_first(keys).map_err(|e| LoadError::new("keyring", invalid_argument_reason(&e)))
}

/// How a message names the path of a key file or directory: as written, unless the text
/// looks like key material given where its path belongs (a keyring pasted into the
/// setting, say) — then not at all, since messages and logs must never show a key.
pub(crate) fn shown_path(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    if holds_key_material(&text) {
        "(a path that looks like key material, not shown)".to_owned()
    } else {
        text.into_owned()
    }
}

/// Whether `text` holds what a keyring entry holds: a 32-byte key in standard base64 (43
/// characters of its alphabet, then `=`), or several lines or entries of them.
fn holds_key_material(text: &str) -> bool {
    let is_base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    let bytes = text.as_bytes();
    text.contains(['\n', '\r'])
        || bytes.windows(44).any(|window| {
            window
                .split_last()
                .is_some_and(|(last, key)| *last == b'=' && key.iter().all(is_base64))
        })
}

/// Decodes one base64 key and checks it; the reason never contains the key.
pub(crate) fn decode_key(b64: &str) -> Result<KeyEncryptionKey, String> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(b64.trim())
            .map_err(|_| String::from("the key is not valid standard base64"))?,
    );
    if bytes.len() != 32 {
        return Err(format!(
            "the key is {} bytes; a key is 32 bytes",
            bytes.len()
        ));
    }
    KeyEncryptionKey::from_bytes(&bytes).map_err(|e| invalid_argument_reason(&e))
}

fn invalid_argument_reason(e: &pci_vault::Error) -> String {
    match e {
        pci_vault::Error::InvalidArgument(reason) => (*reason).to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    const K2: &str = "3q2+7w0YV7V3h3Q0a8Qm2kq0pq8c5yB7yY8m0a3n1xE=";

    #[test]
    fn a_path_is_shown_unless_it_holds_key_material() {
        use std::path::Path;
        for path in [
            "/etc/pci-vault/keyring",
            "/var/run/secrets/pci-vault/..2026_12_01_03_20_12.123456789/primary",
            "C:/keys/key=value.txt",
            "relative/dir",
        ] {
            assert_eq!(shown_path(Path::new(path)), path);
        }
        for pasted in [
            format!("k1:{K1}"),
            format!("k1:{K1},k2:{K2}"),
            format!("k1:{K1}\nk2:{K2}"),
            K2.to_owned(),
            format!("/etc/{K1}"),
            "-----BEGIN\nsecret".to_owned(),
        ] {
            let shown = shown_path(Path::new(&pasted));
            assert!(
                !shown.contains(&K1[..8]) && !shown.contains(&K2[..8]),
                "{shown}"
            );
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn first_entry_is_primary() {
        let ring = parse_keyring(&format!("# comment\nk2:{K2}\nk1:{K1}\n")).unwrap();
        assert_eq!(ring.primary().as_str(), "k2");
        assert_eq!(ring.key_ids().count(), 2);
        let ring = parse_keyring(&format!("k1:{K1}, k2:{K2}")).unwrap();
        assert_eq!(ring.primary().as_str(), "k1");
    }

    #[test]
    fn bad_material_is_named_without_the_key() {
        let zeros = STANDARD.encode([0u8; 32]);
        let short = STANDARD.encode([7u8; 31]);
        let cases = [
            (String::new(), "has no keys"),
            (format!("k1{K1}"), "entry 1 is not of the form"),
            (format!("k 1:{K1}"), "invalid key id"),
            (
                format!("k1:{K1},k2:not base64!"),
                "entry 2 (key id \"k2\"): the key is not valid standard base64",
            ),
            (format!("k1:{short}"), "the key is 31 bytes"),
            (format!("k1:{zeros}"), "must not be all zeros"),
            (format!("k1:{K1},k1:{K2}"), "appears twice"),
        ];
        for (text, expected) in cases {
            let err = parse_keyring(&text).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
            for secret in [K1, K2, &zeros, &short] {
                assert!(!err.contains(secret), "{err} prints a key");
            }
        }
    }
}
