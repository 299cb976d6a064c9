//! The shared cases of `cases.json`, through `VaultConfig` and `open()`. The Node, Python
//! and server front-ends run the same file through their own options.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a malformed case file ends the test"
)]

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault::{ErrorCode, Result, SessionOverrides};
use pci_vault_config::{KeySource, RedisOptions, StoreConfig, VaultConfig, inline_keyring};
use serde::Deserialize;
use zeroize::Zeroizing;

#[derive(Deserialize)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    store: String,
    keys: Keys,
    #[serde(default)]
    session_defaults: Defaults,
    tenant: Option<String>,
    audit_key_len: Option<usize>,
    expect: Expect,
    #[serde(default)]
    secrets: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Keys {
    Development(bool),
    Keyring(Vec<Entry>),
    Env(String),
    File(PathBuf),
    Source(String),
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    key: String,
}

#[derive(Default, Deserialize)]
struct Defaults {
    ttl_seconds: Option<u64>,
    pin_length: Option<u64>,
    max_attempts: Option<u64>,
    fields: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Expect {
    error: Option<String>,
    store: Option<String>,
    ttl_seconds: Option<u64>,
    pin_length: Option<u8>,
    max_attempts: Option<u8>,
    fields: Option<Vec<String>>,
    tenant: Option<String>,
    key_warnings: Option<usize>,
}

/// The case's configuration, as a Rust host would write it.
fn config(case: &Case) -> Result<VaultConfig> {
    let store = StoreConfig::parse(&case.store)?;
    let keys = match &case.keys {
        Keys::Development(true) => KeySource::Development,
        Keys::Development(false) => panic!("{}: development is true or absent", case.name),
        Keys::Keyring(entries) => inline_keyring(entries.iter().map(|e| {
            let key = STANDARD
                .decode(&e.key)
                .expect("a base64 key in the case file");
            (e.id.clone(), Zeroizing::new(key))
        }))?,
        Keys::Env(var) => KeySource::Env(var.clone()),
        Keys::File(path) => KeySource::File(path.clone()),
        Keys::Source(text) => KeySource::parse(text)?,
    };
    let mut config = VaultConfig::new(store, keys);
    let mut defaults = SessionOverrides::new();
    defaults.ttl_seconds = case.session_defaults.ttl_seconds;
    defaults.pin_length = case.session_defaults.pin_length;
    defaults.max_attempts = case.session_defaults.max_attempts;
    defaults.fields.clone_from(&case.session_defaults.fields);
    config.session_defaults = defaults;
    config.tenant.clone_from(&case.tenant);
    config.audit_key = case.audit_key_len.map(|n| Zeroizing::new(vec![7; n]));
    Ok(config)
}

fn cases() -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases.json");
    let text = std::fs::read_to_string(&path).expect("config/tests/cases.json");
    serde_json::from_str::<CaseFile>(&text)
        .expect("the case file")
        .cases
}

#[tokio::test]
async fn the_shared_cases_open_the_same_vault() {
    let cases = cases();
    assert!(cases.len() > 20, "the case file lost its cases");
    for case in cases {
        let name = &case.name;
        let expect = &case.expect;
        if let (Some(store), Ok(parsed)) = (&expect.store, StoreConfig::parse(&case.store)) {
            assert_eq!(&parsed.describe(), store, "{name}: parsed store");
            let debug = format!("{parsed:?}");
            for secret in &case.secrets {
                assert!(!debug.contains(secret), "{name}: Debug shows a secret");
            }
        }
        let opened = match config(&case) {
            Ok(config) => {
                let debug = format!("{config:?}");
                for secret in &case.secrets {
                    assert!(!debug.contains(secret), "{name}: Debug shows a secret");
                }
                config.open().await
            }
            Err(e) => Err(e),
        };
        match (&expect.error, opened) {
            (Some(code), Err(e)) => {
                assert_eq!(e.code().as_str(), code, "{name}: {e}");
                let message = e.to_string();
                for secret in &case.secrets {
                    assert!(!message.contains(secret), "{name}: error shows a secret");
                }
            }
            (Some(code), Ok(_)) => panic!("{name}: opened, expected {code}"),
            (None, Err(e)) => panic!("{name}: {e}"),
            (None, Ok(opened)) => {
                let defaults = opened.vault.session_defaults();
                let fields: Vec<&str> = defaults.form.fields().iter().map(|f| f.name()).collect();
                assert_eq!(
                    Some(defaults.ttl.as_secs()),
                    expect.ttl_seconds,
                    "{name}: ttl"
                );
                assert_eq!(Some(defaults.pin_length), expect.pin_length, "{name}: pin");
                assert_eq!(
                    Some(defaults.max_attempts),
                    expect.max_attempts,
                    "{name}: attempts"
                );
                assert_eq!(
                    expect
                        .fields
                        .as_deref()
                        .map(|f| f.iter().map(String::as_str).collect()),
                    Some(fields),
                    "{name}: fields"
                );
                assert_eq!(
                    expect.tenant.as_deref(),
                    Some(opened.vault.tenant().as_str()),
                    "{name}: tenant"
                );
                assert_eq!(
                    expect.key_warnings,
                    Some(opened.key_warnings.len()),
                    "{name}: key warnings"
                );
                assert!(opened.store_warnings.is_empty(), "{name}: store warnings");
                assert_eq!(opened.warnings().count(), opened.key_warnings.len());
                // The vault works: the store and keys are really open.
                opened.vault.ping().await.expect("ping");
                let ticket = opened
                    .vault
                    .create_session(defaults)
                    .await
                    .expect("a session on the defaults");
                let status = opened.vault.status(&ticket.id).await.expect("status");
                assert_eq!(status.attempts_left, defaults.max_attempts, "{name}");
            }
        }
    }
}

#[test]
fn redis_passwords_never_print() {
    let store = StoreConfig::parse("rediss://user:hunter2@a:1").expect("a Redis URL");
    assert_eq!(store.describe(), "redis (single node, TLS, 1 URL(s))");
    assert!(!format!("{store:?}").contains("hunter2"));
    let config = VaultConfig::new(store, KeySource::Development);
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn the_store_string_and_the_url_list_follow_one_rule() {
    assert_eq!(
        StoreConfig::parse("memory").expect("memory"),
        StoreConfig::default()
    );
    assert_eq!(
        StoreConfig::parse("redis://a:1").expect("one URL"),
        StoreConfig::Redis(RedisOptions::new("redis://a:1"))
    );
    assert_eq!(
        StoreConfig::redis(["redis://a:1"]),
        StoreConfig::Redis(RedisOptions::new("redis://a:1"))
    );
    assert_eq!(
        StoreConfig::parse("rediss://a:1, rediss://b:2").expect("two URLs"),
        StoreConfig::Redis(RedisOptions::cluster(["rediss://a:1", "rediss://b:2"]))
    );
    assert_eq!(
        StoreConfig::redis(["rediss://a:1", "rediss://b:2"]),
        StoreConfig::Redis(RedisOptions::cluster(["rediss://a:1", "rediss://b:2"]))
    );
    for bad in ["", "mem", "http://x", "redis://a,memory", ","] {
        let err = StoreConfig::parse(bad).expect_err(bad);
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad}");
    }
}

#[tokio::test]
async fn audit_keys_are_32_bytes() {
    let open = |len: usize| {
        let mut config = VaultConfig::new(StoreConfig::default(), KeySource::Development);
        config.audit_key = Some(Zeroizing::new(vec![5; len]));
        config.open()
    };
    assert!(open(32).await.is_ok());
    for len in [0, 16, 31, 33, 64] {
        let err = open(len).await.expect_err("a short or long audit key");
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert_eq!(
            err.to_string(),
            "invalid argument: the audit key is 32 bytes"
        );
    }
}

#[tokio::test]
async fn wraps_are_counted_per_key_and_the_limit_is_flagged() {
    let keys = inline_keyring([("k1", Zeroizing::new(vec![9u8; 32]))]).expect("a keyring");
    let mut config = VaultConfig::new(StoreConfig::default(), keys);
    config.wrap_warning_limit = 2;
    let opened = config.open().await.expect("a vault");
    let defaults = opened.vault.session_defaults().clone();
    assert!(opened.key_usage.wraps().is_empty());
    for n in 1..=3u64 {
        opened
            .vault
            .create_session(&defaults)
            .await
            .expect("a session");
        let wraps = opened.key_usage.wraps();
        assert_eq!(wraps.len(), 1);
        let k1 = wraps.first().expect("one key");
        assert_eq!(k1.key_id.as_str(), "k1");
        assert_eq!(k1.wraps, n);
        assert_eq!(k1.rotation_due, n >= 2);
    }
    assert_eq!(opened.key_usage.warning_limit(), 2);

    let mut zero = VaultConfig::new(StoreConfig::default(), KeySource::Development);
    zero.wrap_warning_limit = 0;
    let err = zero.open().await.expect_err("a limit of 0");
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}
