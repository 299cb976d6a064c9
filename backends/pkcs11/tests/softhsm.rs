//! The PKCS#11 provider against SoftHSM2: the conformance suite's vault tests on the memory
//! store, rotation inside the token, the key's attributes, what the token is given, and the
//! errors of a bad configuration.
//!
//! Needs SoftHSM2 and `SOFTHSM2_CONF` naming a configuration whose token directory is a
//! temporary directory: `scripts/test 20-keys` installs SoftHSM2 and sets it. Without it
//! every test here fails, saying so.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup or expectation is a failed test"
)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use pci_vault::conformance::{Harness, visa_form};
use pci_vault::{DataKey, ErrorCode, KeyId, KeyProvider, SessionOptions, Vault, WrappedKey};
use pci_vault_pkcs11::{PinSource, Pkcs11Config, Pkcs11Provider, create_key};
use pci_vault_testkit::keys::{ProviderHarness, RecordingProvider};
use pci_vault_testkit::memory::MemoryHarness;

const SO_PIN: &str = "0000-so";
const PIN: &str = "1234-user";

/// The token of this test process: a label of its own, so runs never share a token.
fn token_label() -> &'static str {
    static LABEL: OnceLock<String> = OnceLock::new();
    LABEL.get_or_init(|| {
        std::env::var("PCI_VAULT_PKCS11_TEST_TOKEN")
            .unwrap_or_else(|_| format!("pci-vault-test-{}", std::process::id()))
    })
}

fn module() -> PathBuf {
    PathBuf::from(
        std::env::var("PCI_VAULT_PKCS11_MODULE")
            .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".to_owned()),
    )
}

/// The token, initialised once per test process, and the directory of its PIN file.
struct Token {
    module: PathBuf,
    pin_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn token() -> &'static Token {
    static TOKEN_ONCE: OnceLock<Token> = OnceLock::new();
    TOKEN_ONCE.get_or_init(|| {
        let conf = std::env::var("SOFTHSM2_CONF").unwrap_or_else(|_| {
            panic!(
                "SOFTHSM2_CONF is not set: run `scripts/test 20-keys`, which installs SoftHSM2 \
                 and points it at a temporary token directory"
            )
        });
        assert!(
            std::fs::metadata(&conf).is_ok(),
            "SOFTHSM2_CONF names {conf}, which does not exist"
        );
        let module = module();
        let status = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", token_label()])
            .args(["--so-pin", SO_PIN, "--pin", PIN])
            .status()
            .expect("softhsm2-util (Debian package softhsm2)");
        assert!(status.success(), "softhsm2-util --init-token failed");
        let dir = tempfile::tempdir().unwrap();
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        let token = Token {
            module,
            pin_file,
            _dir: dir,
        };
        for label in ["k1", "k2", "stranger"] {
            create_key(&token.config(label), &id(label)).unwrap();
        }
        token
    })
}

impl Token {
    fn config(&self, key: &str) -> Pkcs11Config {
        Pkcs11Config::new(
            &self.module,
            token_label(),
            id(key),
            PinSource::File(self.pin_file.clone()),
        )
    }
}

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

async fn provider(config: Pkcs11Config) -> Arc<dyn KeyProvider> {
    Arc::new(Pkcs11Provider::connect(config).await.unwrap())
}

/// `k1` wraps; after the rotation `k2` wraps and `k1` only unwraps; `stranger` is another
/// key of the same token.
async fn harness() -> ProviderHarness {
    let token = tokio::task::spawn_blocking(token).await.unwrap();
    let mut rotated = token.config("k2");
    rotated.previous = vec![id("k1")];
    ProviderHarness {
        memory: MemoryHarness::new(),
        keys: provider(token.config("k1")).await,
        rotated: provider(rotated).await,
        renamed: provider(token.config("stranger")).await,
    }
}

mod conformance {
    pci_vault::conformance_tests!(crate::harness().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_is_created_sensitive_and_never_extractable() {
    let token = tokio::task::spawn_blocking(token).await.unwrap();
    // A session of our own, outside the provider, reads what the token says of the key.
    let context = Pkcs11::new(&token.module).unwrap();
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = context
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| context.get_token_info(*s).unwrap().label().trim_end() == token_label())
        .unwrap();
    let session = context.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(PIN)));
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"k1".to_vec()),
        ])
        .unwrap();
    assert_eq!(key.len(), 1);
    let attributes = session
        .get_attributes(
            key[0],
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Token,
            ],
        )
        .unwrap();
    for expected in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::Token(true),
    ] {
        assert!(
            attributes.contains(&expected),
            "{expected:?} in {attributes:?}"
        );
    }
    // The value itself cannot be read.
    let value = session
        .get_attributes(key[0], &[AttributeType::Value])
        .unwrap();
    assert!(
        !value.iter().any(|a| matches!(a, Attribute::Value(_))),
        "the token gave out the key's value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_sealed_before_a_rotation_reveals_after_it() {
    let h = harness().await;
    let (before, _) = pci_vault::conformance::vault_on(h.store(), &h, h.keys.clone());
    let t = before
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = before.submit(&t.id, &visa_form()).await.unwrap();
    let (after, _) = pci_vault::conformance::vault_on(h.store(), &h, h.rotated.clone());
    let form = after.reveal(&t.id, &receipt.pin).await.unwrap();
    assert_eq!(form.card().unwrap().masked_number, "424242******4242");
    // The rotated provider wraps under k2.
    let dek = DataKey::generate();
    assert_eq!(h.rotated.wrap(&dek, b"a").await.unwrap().key_id, id("k2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_key_id_is_key_unavailable_without_asking_the_token() {
    let h = harness().await;
    let dek = DataKey::generate();
    let wrapped = h.keys.wrap(&dek, b"aad").await.unwrap();
    // The stranger key is in the same token and logged in: only the id decides.
    let err = h.renamed.unwrap(&wrapped, b"aad").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyUnavailable, "{err}");
    let relabelled = WrappedKey {
        key_id: id("k2"),
        ciphertext: wrapped.ciphertext.clone(),
    };
    // k2 is known to the rotated provider, but did not wrap this key: the label is bound.
    let err = h.rotated.unwrap(&relabelled, b"aad").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::IntegrityError, "{err}");
    let err = h.keys.unwrap(&wrapped, b"other").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::IntegrityError, "{err}");
    let mut flipped = wrapped.clone();
    if let Some(b) = flipped.ciphertext.last_mut() {
        *b ^= 1;
    }
    let err = h.keys.unwrap(&flipped, b"aad").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::IntegrityError, "{err}");
    assert_eq!(
        h.keys
            .unwrap(&wrapped, b"aad")
            .await
            .unwrap()
            .expose_secret(),
        dek.expose_secret()
    );
}

/// The provider is handed 32-byte data keys and associated data, nothing else: no card
/// number, security code or PIN reaches the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_token_sees_only_data_keys() {
    let h = harness().await;
    let recording = Arc::new(RecordingProvider::new(h.keys.clone()));
    let vault = Vault::builder(h.store(), recording.clone())
        .clock(h.clock())
        .build()
        .unwrap();
    let t = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&t.id, &visa_form()).await.unwrap();
    let pin = receipt.pin.expose_secret().to_owned();
    vault.reveal(&t.id, &receipt.pin).await.unwrap();
    let calls = recording.calls();
    assert!(calls.iter().any(|c| c.dek_len == 32), "no wrap recorded");
    for call in calls {
        assert!(call.dek_len == 0 || call.dek_len == 32);
        let aad = String::from_utf8_lossy(&call.aad);
        for secret in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "123",
            pin.as_str(),
        ] {
            assert!(
                !pci_vault_testkit::secrets::contains_token(&aad, secret),
                "the associated data holds a secret"
            );
        }
        assert_eq!(call.ciphertext.len(), 61);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_share_a_small_session_pool() {
    let token = tokio::task::spawn_blocking(token).await.unwrap();
    let mut config = token.config("k1");
    config.sessions = 2;
    let provider = provider(config).await;
    let mut tasks = Vec::new();
    for i in 0..64u8 {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            let dek = DataKey::generate();
            let aad = [i; 7];
            let wrapped = provider.wrap(&dek, &aad).await.unwrap();
            let back = provider.unwrap(&wrapped, &aad).await.unwrap();
            assert_eq!(back.expose_secret(), dek.expose_secret());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_configuration_fails_at_open_and_says_why() {
    let token = tokio::task::spawn_blocking(token).await.unwrap();
    let open = |config: Pkcs11Config| async move {
        let err = Pkcs11Provider::connect(config).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::KeyUnavailable, "{err}");
        assert!(!err.to_string().contains(PIN), "{err}");
        err.to_string()
    };
    let mut c = token.config("k1");
    c.token = "no-such-token".into();
    assert!(
        open(c)
            .await
            .contains("no PKCS#11 token labelled \"no-such-token\"")
    );

    let c = token.config("missing-key");
    assert!(
        open(c)
            .await
            .contains("has no secret key labelled \"missing-key\"")
    );

    let mut c = token.config("k1");
    c.previous = vec![id("retired-and-destroyed")];
    assert!(open(c).await.contains("retired-and-destroyed"));

    let dir = tempfile::tempdir().unwrap();
    let mut c = token.config("k1");
    c.pin = PinSource::File(dir.path().join("absent"));
    assert!(open(c).await.contains("cannot read the PKCS#11 PIN file"));

    let mut c = token.config("k1");
    c.module = dir.path().join("not-a-module.so");
    assert!(open(c).await.contains("cannot load the PKCS#11 module"));

    // A key that could leave the token is refused.
    let extractable = extractable_key();
    let c = token.config(extractable);
    assert!(
        open(c)
            .await
            .contains("must be sensitive and not extractable")
    );
}

/// Creates, once, on the token [`token`] made, a key the provider must refuse: extractable
/// and not sensitive.
fn extractable_key() -> &'static str {
    static ONCE: OnceLock<()> = OnceLock::new();
    const LABEL: &str = "extractable";
    ONCE.get_or_init(|| {
        let (context, slot) = own_slot();
        let session = context.open_rw_session(slot).unwrap();
        let _ = session.login(UserType::User, Some(&AuthPin::from(PIN)));
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(LABEL.as_bytes().to_vec()),
                    Attribute::Token(true),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ],
            )
            .unwrap();
    });
    LABEL
}

/// Runs `body` in a process of its own: this test binary again, running only `test`. For
/// what changes every session of a process (PKCS#11 logins are per application, and this
/// test process is logged in). The child gets a SoftHSM2 token directory of its own, with a
/// token holding key `k1`: a failed login rewrites the token's file, which a process
/// reading the same directory at that moment would find half-written.
fn in_own_process(test: &str, body: impl FnOnce()) {
    if std::env::var_os("PCI_VAULT_PKCS11_TEST_TOKEN").is_some() {
        let (config, _dir) = child_config("k1", PIN);
        create_key(&config, &id("k1")).unwrap();
        body();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let label = format!("{}-{test}", token_label());
    let label = &label[..label.len().min(32)];
    let status = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", SO_PIN, "--pin", PIN])
        .env("SOFTHSM2_CONF", &conf)
        .status()
        .expect("softhsm2-util (Debian package softhsm2)");
    assert!(status.success(), "softhsm2-util --init-token failed");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env("SOFTHSM2_CONF", &conf)
        .env("PCI_VAULT_PKCS11_TEST_TOKEN", label)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// In a process of [`in_own_process`]: a configuration for key `key` whose PIN is `pin`,
/// in a file that lives as long as the returned directory.
fn child_config(key: &str, pin: &str) -> (Pkcs11Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, pin).unwrap();
    let config = Pkcs11Config::new(module(), token_label(), id(key), PinSource::File(pin_file));
    (config, dir)
}

/// This process's token (see [`token_label`]) as a context and slot of their own (the same
/// loaded module).
fn own_slot() -> (Pkcs11, cryptoki::slot::Slot) {
    let context = Pkcs11::new(module()).unwrap();
    let _ = context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = context
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| context.get_token_info(*s).unwrap().label().trim_end() == token_label())
        .unwrap();
    (context, slot)
}

fn block_on(test: impl Future<Output = ()>) {
    tokio::runtime::Runtime::new().unwrap().block_on(test);
}

/// In a process of its own: a provider on `config` that has wrapped a data key, after which
/// the process logged out of the token from a session of its own (as a restarted HSM
/// forgets the login). Returns the provider, the data key and its wrapped form.
async fn provider_after_a_logout(config: Pkcs11Config) -> (Pkcs11Provider, DataKey, WrappedKey) {
    let provider = Pkcs11Provider::connect(config).await.unwrap();
    let dek = DataKey::generate();
    let wrapped = provider.wrap(&dek, b"aad").await.unwrap();
    let (context, slot) = own_slot();
    let session = context.open_ro_session(slot).unwrap();
    session.logout().unwrap();
    assert_eq!(
        session.get_session_info().unwrap().session_state(),
        cryptoki::session::SessionState::RoPublic,
        "still logged in"
    );
    (provider, dek, wrapped)
}

/// A wrong PIN is named, in a process of its own (this one is logged in already).
#[test]
fn a_wrong_pin_is_named_in_a_fresh_process() {
    in_own_process("a_wrong_pin_is_named_in_a_fresh_process", || {
        let (c, _dir) = child_config("k1", "not-the-pin");
        let err = Pkcs11Provider::open(&c).unwrap_err();
        assert_eq!(err.code(), ErrorCode::KeyUnavailable);
        assert!(
            err.to_string().contains("is wrong for PKCS#11 token"),
            "{err}"
        );
        assert!(!err.to_string().contains("not-the-pin"), "{err}");
    });
}

/// After the token forgets the application's login (a restarted or failed-over HSM, a
/// logout from another session), the next call logs in again, finds its keys again and
/// succeeds. In a process of its own: a logout ends the login of every session of the
/// process.
#[test]
fn a_lost_login_is_restored_by_the_next_call() {
    in_own_process("a_lost_login_is_restored_by_the_next_call", || {
        let (config, _dir) = child_config("k1", PIN);
        block_on(async {
            let (provider, dek, before) = provider_after_a_logout(config).await;
            let back = provider.unwrap(&before, b"aad").await.unwrap();
            assert_eq!(back.expose_secret(), dek.expose_secret());
            let after = provider.wrap(&dek, b"aad").await.unwrap();
            let back = provider.unwrap(&after, b"aad").await.unwrap();
            assert_eq!(back.expose_secret(), dek.expose_secret());
        });
    });
}

/// When the token has lost the login and the PIN source now holds a wrong PIN, the provider
/// tries it once: it does not try it again (using up the token's login attempts, which
/// could lock it) until the PIN source changes, and then it recovers.
#[test]
fn a_refused_pin_is_not_tried_again_until_it_changes() {
    in_own_process("a_refused_pin_is_not_tried_again_until_it_changes", || {
        let (config, dir) = child_config("k1", PIN);
        let pin_file = dir.path().join("pin");
        block_on(async {
            let (provider, dek, wrapped) = provider_after_a_logout(config).await;
            std::fs::write(&pin_file, "not-the-pin").unwrap();
            let pause = std::time::Duration::from_millis(1100);

            let refused = provider.unwrap(&wrapped, b"aad").await.unwrap_err();
            assert!(
                refused.to_string().contains("is wrong for PKCS#11 token"),
                "{refused}"
            );
            let soon = provider.unwrap(&wrapped, b"aad").await.unwrap_err();
            assert!(soon.to_string().contains("last tried less than"), "{soon}");
            tokio::time::sleep(pause).await;
            let again = provider.unwrap(&wrapped, b"aad").await.unwrap_err();
            assert!(
                again
                    .to_string()
                    .contains("not logging in with it again until it changes"),
                "{again}"
            );
            for error in [refused, soon, again] {
                assert_eq!(error.code(), ErrorCode::KeyUnavailable);
                assert!(!error.to_string().contains("not-the-pin"), "{error}");
            }

            std::fs::write(&pin_file, PIN).unwrap();
            tokio::time::sleep(pause).await;
            let back = provider.unwrap(&wrapped, b"aad").await.unwrap();
            assert_eq!(back.expose_secret(), dek.expose_secret());
            provider.wrap(&dek, b"aad").await.unwrap();
        });
    });
}

/// `session-mode=read-write` (for a token without read-only sessions, as AWS CloudHSM's
/// SDK 5) opens the provider on read-write sessions: it unwraps what a provider on
/// read-only sessions wrapped, and the other way round. (SoftHSM2 does not count sessions,
/// so which kind was opened is not checked here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_sessions_work_when_asked() {
    let token = tokio::task::spawn_blocking(token).await.unwrap();
    let read_only = Pkcs11Provider::connect(token.config("k1")).await.unwrap();
    let mut config = token.config("k1");
    config.read_write = true;
    let read_write = Pkcs11Provider::connect(config).await.unwrap();
    let dek = DataKey::generate();
    let one = read_only.wrap(&dek, b"aad").await.unwrap();
    let other = read_write.wrap(&dek, b"aad").await.unwrap();
    for (provider, wrapped) in [(&read_write, &one), (&read_only, &other)] {
        let back = provider.unwrap(wrapped, b"aad").await.unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());
    }
}

/// The key-source string, through the one vault configuration: an operator switches to the
/// HSM by configuration alone, and the wraps are counted under the HSM key's label.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_source_string_opens_a_vault_on_the_hsm() {
    use pci_vault_config::{KeySource, StoreConfig, VaultConfig};
    let token = tokio::task::spawn_blocking(token).await.unwrap();
    let text = format!(
        "pkcs11:module={};token={};key=k2;previous=k1;pin-file={};sessions=2",
        token.module.display(),
        token_label(),
        token.pin_file.display()
    );
    let source = KeySource::parse(&text).unwrap();
    assert_eq!(
        source.describe(),
        format!("pkcs11 (token {}, key k2, 1 previous)", token_label())
    );
    let opened = VaultConfig::new(StoreConfig::default(), source)
        .open()
        .await
        .unwrap();
    let vault = &opened.vault;
    let t = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&t.id, &visa_form()).await.unwrap();
    let form = vault.reveal(&t.id, &receipt.pin).await.unwrap();
    assert_eq!(form.card().unwrap().masked_number, "424242******4242");
    let wraps = opened.key_usage.wraps();
    assert_eq!(wraps.len(), 1);
    assert_eq!(wraps.first().unwrap().key_id.as_str(), "k2");
    assert_eq!(wraps.first().unwrap().wraps, 1);
}
