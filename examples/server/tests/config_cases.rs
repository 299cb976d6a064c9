//! The shared cases of `config/tests/cases.json`, through the server's flags: the same
//! store string, key source and session defaults open the same vault as in Rust, Node and
//! Python.
//!
//! The server takes keys from a file, a directory or `PCI_VAULT_KEYS` only: an inline
//! keyring becomes a keyring file, an audit key an audit key file, and the cases that only
//! an inline keyring, a named variable or a tenant can express are skipped (each named in
//! the output).

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a malformed case file ends the test"
)]

use std::path::PathBuf;

use clap::Parser;
use pci_vault_server::config::{Args, ConfigError};
use pci_vault_server::metrics::Metrics;
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/tests/cases.json");
    let text = std::fs::read_to_string(path).expect("config/tests/cases.json");
    let file: Value = serde_json::from_str(&text).expect("the case file");
    file["cases"].as_array().expect("cases").clone()
}

/// The flags of a case, or why the server cannot express it.
fn flags(case: &Value, dir: &tempfile::TempDir) -> Result<Vec<String>, &'static str> {
    if case.get("tenant").is_some() {
        return Err("the server's tenants come from its API keys");
    }
    let mut flags = vec![
        "pci-vault-server".to_owned(),
        "--store".to_owned(),
        case["store"].as_str().expect("store").to_owned(),
    ];
    if let Some(len) = case.get("audit_key_len").and_then(Value::as_u64) {
        use base64::Engine as _;
        let key = vec![7u8; usize::try_from(len).expect("a length")];
        let path = dir.path().join("audit-key");
        let text = base64::engine::general_purpose::STANDARD.encode(key);
        std::fs::write(&path, format!("{text}\n")).expect("an audit key file");
        flags.extend(["--audit-key-file".to_owned(), path.display().to_string()]);
    }
    let keys = &case["keys"];
    if let Some(entries) = keys.get("keyring") {
        if case.get("fails_in").is_some() {
            return Err("the server takes no inline key material");
        }
        let text: Vec<String> = entries
            .as_array()
            .expect("keyring")
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["id"].as_str().expect("id"),
                    e["key"].as_str().expect("key")
                )
            })
            .collect();
        let path = dir.path().join("keyring");
        std::fs::write(&path, text.join("\n")).expect("a keyring file");
        flags.extend(["--keys-file".to_owned(), path.display().to_string()]);
    } else if let Some(path) = keys.get("file") {
        flags.extend([
            "--keys-file".to_owned(),
            path.as_str().expect("file").to_owned(),
        ]);
    } else if let Some(source) = keys.get("source") {
        flags.extend([
            "--key-source".to_owned(),
            source.as_str().expect("source").to_owned(),
        ]);
    } else if keys.get("env").is_some() {
        return Err("the server reads PCI_VAULT_KEYS only");
    }
    let defaults = &case["session_defaults"];
    for (key, flag) in [
        ("ttl_seconds", "--session-ttl-seconds"),
        ("pin_length", "--session-pin-length"),
        ("max_attempts", "--session-max-attempts"),
    ] {
        if let Some(value) = defaults.get(key) {
            flags.extend([flag.to_owned(), value.to_string()]);
        }
    }
    if let Some(fields) = defaults.get("fields").and_then(Value::as_array) {
        let names: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
        flags.extend(["--session-fields".to_owned(), names.join(",")]);
    }
    Ok(flags)
}

#[tokio::test]
async fn the_shared_cases_open_the_same_vault() {
    let mut ran = 0;
    for case in cases() {
        let name = case["name"].as_str().expect("name");
        let expect = &case["expect"];
        let dir = tempfile::tempdir().expect("a temporary directory");
        let flags = match flags(&case, &dir) {
            Ok(flags) => flags,
            Err(why) => {
                println!("skipped {name:?}: {why}");
                continue;
            }
        };
        ran += 1;
        let args = Args::try_parse_from(&flags).expect("flags the server takes");
        if let (Some(store), Ok(config)) = (expect.get("store"), args.vault_config()) {
            assert_eq!(
                Some(config.store.describe().as_str()),
                store.as_str(),
                "{name}"
            );
        }
        let opened = args.open_vault(&Metrics::new()).await;
        let secrets: Vec<&str> = case
            .get("secrets")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match (expect.get("error").and_then(Value::as_str), opened) {
            (Some(code), Err(e)) => {
                let actual = match &e {
                    ConfigError::Vault(e) => e.code().as_str().to_owned(),
                    // The file is checked as the server reads it, before the vault is.
                    ConfigError::AuditKey(_) => "INVALID_ARGUMENT".to_owned(),
                    ConfigError::Store(message) if message.starts_with("store unavailable") => {
                        "STORE_UNAVAILABLE".to_owned()
                    }
                    ConfigError::Store(message) if message.starts_with("invalid argument") => {
                        "INVALID_ARGUMENT".to_owned()
                    }
                    other => panic!("{name}: {other}"),
                };
                assert_eq!(actual, code, "{name}: {e}");
                for secret in &secrets {
                    assert!(!e.to_string().contains(secret), "{name}: {e}");
                }
            }
            (Some(code), Ok(_)) => panic!("{name}: opened, expected {code}"),
            (None, Err(e)) => panic!("{name}: {e}"),
            (None, Ok((opened, store))) => {
                let defaults = opened.vault.session_defaults();
                assert_eq!(Some(store.as_str()), expect["store"].as_str(), "{name}");
                assert_eq!(
                    Some(defaults.ttl.as_secs()),
                    expect["ttl_seconds"].as_u64(),
                    "{name}"
                );
                assert_eq!(
                    Some(u64::from(defaults.pin_length)),
                    expect["pin_length"].as_u64(),
                    "{name}"
                );
                assert_eq!(
                    Some(u64::from(defaults.max_attempts)),
                    expect["max_attempts"].as_u64(),
                    "{name}"
                );
                assert_eq!(
                    Some(opened.key_warnings.len() as u64),
                    expect["key_warnings"].as_u64(),
                    "{name}"
                );
                let fields: Vec<&str> = defaults.form.fields().iter().map(|f| f.name()).collect();
                let expected: Vec<&str> = expect["fields"]
                    .as_array()
                    .map(|f| f.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                assert_eq!(fields, expected, "{name}");
                assert_eq!(opened.vault.tenant().as_str(), "default", "{name}");
            }
        }
    }
    assert!(ran >= 20, "only {ran} cases ran");
}
