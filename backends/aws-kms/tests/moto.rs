//! The AWS KMS provider against moto's KMS server on loopback: the conformance suite's
//! vault tests on the memory store, rotation by moving an alias, what KMS is sent, and the
//! errors of a bad configuration or an unreachable endpoint.
//!
//! Needs `PCI_VAULT_TEST_KMS_ENDPOINT` (a moto server started with recording enabled) and
//! test credentials in the environment: `scripts/test 20-keys` starts the server and sets
//! them. Without them every test here fails, saying so.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed setup or expectation is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault::conformance::{Harness, visa_form};
use pci_vault::{DataKey, ErrorCode, KeyId, KeyProvider, SessionOptions, Vault, WrappedKey};
use pci_vault_aws_kms::{AwsKmsConfig, AwsKmsProvider, CONTEXT_KEY, KmsClient};
use pci_vault_testkit::keys::{ProviderHarness, RecordingProvider};
use pci_vault_testkit::memory::MemoryHarness;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

mod support;
use support::{REGION, config, endpoint, moto_api};

fn client() -> KmsClient {
    KmsClient::new(&config("unused")).unwrap()
}

async fn create_key(client: &KmsClient) -> String {
    let answer = client
        .call("CreateKey", &json!({ "Description": "pci-vault test" }))
        .await
        .unwrap();
    answer["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
}

/// The keys every test of this process shares: k1 (the primary), k2 (after a rotation)
/// and a stranger.
struct Keys {
    k1: String,
    k2: String,
    stranger: String,
}

async fn keys() -> &'static Keys {
    static KEYS: OnceCell<Keys> = OnceCell::const_new();
    KEYS.get_or_init(|| async {
        moto_api("POST", "/moto-api/recorder/start-recording");
        let client = client();
        Keys {
            k1: create_key(&client).await,
            k2: create_key(&client).await,
            stranger: create_key(&client).await,
        }
    })
    .await
}

async fn provider(config: AwsKmsConfig) -> Arc<dyn KeyProvider> {
    Arc::new(AwsKmsProvider::connect(config).await.unwrap())
}

async fn harness() -> ProviderHarness {
    let keys = keys().await;
    let mut rotated = config(&keys.k2);
    rotated.previous = vec![KeyId::new(keys.k1.as_str()).unwrap()];
    ProviderHarness {
        memory: MemoryHarness::new(),
        keys: provider(config(&keys.k1)).await,
        rotated: provider(rotated).await,
        renamed: provider(config(&keys.stranger)).await,
    }
}

mod conformance {
    pci_vault::conformance_tests!(crate::harness().await);
}

/// A plain HTTP request to moto's own API (not KMS), answered in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_sealed_before_the_alias_moves_reveals_after_it() {
    let client = client();
    let (old, new) = (create_key(&client).await, create_key(&client).await);
    let alias = format!("alias/pci-vault-rotation-{}", std::process::id());
    client
        .call(
            "CreateAlias",
            &json!({ "AliasName": alias, "TargetKeyId": old }),
        )
        .await
        .unwrap();
    let h = MemoryHarness::new();
    let before = provider(config(&alias)).await;
    let (vault, _) = pci_vault::conformance::vault_on(h.store(), &h, before.clone());
    let t = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&t.id, &visa_form()).await.unwrap();

    // The key ceremony: a new KMS key, the alias moved to it, the old id kept for unwrapping.
    client
        .call(
            "UpdateAlias",
            &json!({ "AliasName": alias, "TargetKeyId": new }),
        )
        .await
        .unwrap();
    let mut rotated = config(&alias);
    rotated.previous = vec![KeyId::new(old.as_str()).unwrap()];
    let after = provider(rotated).await;
    let (vault, _) = pci_vault::conformance::vault_on(h.store(), &h, after.clone());
    let form = vault.reveal(&t.id, &receipt.pin).await.unwrap();
    assert_eq!(form.card().unwrap().masked_number, "424242******4242");
    let wrapped = after.wrap(&DataKey::generate(), b"a").await.unwrap();
    assert_eq!(wrapped.key_id.as_str(), new);
    // The provider opened before the move still wraps under the key it resolved.
    let wrapped = before.wrap(&DataKey::generate(), b"a").await.unwrap();
    assert_eq!(wrapped.key_id.as_str(), old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_key_id_is_key_unavailable_and_kms_binds_the_context() {
    let h = harness().await;
    let keys = keys().await;
    let dek = DataKey::generate();
    let wrapped = h.keys.wrap(&dek, b"aad").await.unwrap();
    let err = h.renamed.unwrap(&wrapped, b"aad").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyUnavailable, "{err}");
    assert!(
        err.to_string()
            .contains("neither the primary nor a previous key"),
        "{err}"
    );
    // k2 is known to the rotated provider but did not wrap this key: KMS refuses it (AWS
    // answers IncorrectKeyException, an INTEGRITY_ERROR; moto answers
    // AccessDeniedException, a KEY_UNAVAILABLE). Either way no key comes back.
    let relabelled = WrappedKey {
        key_id: KeyId::new(keys.k2.as_str()).unwrap(),
        ciphertext: wrapped.ciphertext.clone(),
    };
    let err = h.rotated.unwrap(&relabelled, b"aad").await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            ErrorCode::IntegrityError | ErrorCode::KeyUnavailable
        ),
        "{err}"
    );
    let err = h.keys.unwrap(&wrapped, b"other").await.unwrap_err();
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

/// What moto recorded of the requests KMS received: key ids, 32-byte plaintexts (data
/// keys), ciphertext blobs and the encryption context — never a card number, a security
/// code or a PIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kms_sees_only_data_keys() {
    let h = harness().await;
    let recording = Arc::new(RecordingProvider::new(h.keys.clone()));
    let vault = Vault::builder(h.store(), recording.clone())
        .clock(h.clock())
        .build()
        .unwrap();
    let mut pins = Vec::new();
    for _ in 0..3 {
        let t = vault
            .create_session(&SessionOptions::default())
            .await
            .unwrap();
        let receipt = vault.submit(&t.id, &visa_form()).await.unwrap();
        pins.push(receipt.pin.expose_secret().to_owned());
        vault.reveal(&t.id, &receipt.pin).await.unwrap();
    }
    let record = moto_api("GET", "/moto-api/recorder/download-recording");
    let pan_forms = pci_vault_testkit::secrets::encodings(b"4242424242424242");
    for form in &pan_forms {
        assert!(
            !record.contains(form.as_str()),
            "the recording holds the card number"
        );
    }
    let mut plaintexts = 0;
    for line in record.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let body = entry["body"].as_str().unwrap_or("");
        let body = if entry["body_encoded"].as_bool() == Some(true) {
            String::from_utf8(STANDARD.decode(body).unwrap()).unwrap()
        } else {
            body.to_owned()
        };
        for form in &pan_forms {
            assert!(
                !body.contains(form.as_str()),
                "a request holds the card number"
            );
        }
        let target = entry["headers"]["X-Amz-Target"]
            .as_str()
            .or_else(|| entry["headers"]["x-amz-target"].as_str())
            .unwrap_or("");
        if !matches!(target, "TrentService.Encrypt" | "TrentService.Decrypt") {
            continue;
        }
        let request: Value = serde_json::from_str(&body).unwrap();
        if target == "TrentService.Encrypt" {
            // The primary is named by its ARN: the only name AWS resolves across accounts.
            let key = request["KeyId"].as_str().unwrap();
            assert!(key.starts_with("arn:aws:kms:"), "Encrypt named {key}");
        }
        for (name, value) in request.as_object().unwrap() {
            match name.as_str() {
                "KeyId" | "CiphertextBlob" => {}
                "Plaintext" => {
                    let plain = STANDARD.decode(value.as_str().unwrap()).unwrap();
                    assert_eq!(
                        plain.len(),
                        32,
                        "KMS was sent something else than a data key"
                    );
                    plaintexts += 1;
                }
                "EncryptionContext" => {
                    let context = value.as_object().unwrap();
                    assert_eq!(context.len(), 1);
                    let aad = STANDARD
                        .decode(context[CONTEXT_KEY].as_str().unwrap())
                        .unwrap();
                    let aad = String::from_utf8_lossy(&aad);
                    for pin in &pins {
                        assert!(!aad.contains(pin.as_str()), "the context holds a PIN");
                    }
                    assert!(!aad.contains("4242424242424242"));
                }
                other => panic!("KMS was sent a field {other}"),
            }
        }
    }
    assert!(
        plaintexts >= 3,
        "the recording lacks this test's Encrypt requests"
    );
    // The provider itself was handed 32-byte data keys only.
    assert!(
        recording
            .calls()
            .iter()
            .all(|c| c.dek_len == 0 || c.dek_len == 32)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_configuration_fails_at_open_and_says_why() {
    keys().await;
    let err = AwsKmsProvider::connect(config("alias/no-such-alias"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyUnavailable, "{err}");
    assert!(err.to_string().contains("NotFoundException"), "{err}");

    let client = client();
    let disabled = create_key(&client).await;
    client
        .call("DisableKey", &json!({ "KeyId": disabled }))
        .await
        .unwrap();
    let err = AwsKmsProvider::connect(config(&disabled))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is Disabled, not Enabled"),
        "{err}"
    );

    let mut c = config("alias/x");
    c.endpoint = Some("http://kms.example.com".to_owned());
    let err = AwsKmsProvider::connect(c).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
}

/// A closed port: each attempt fails fast, is retried as configured, and the error says
/// how many attempts were made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_endpoint_is_key_unavailable_after_the_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut c = config("alias/x");
    c.endpoint = Some(format!("http://127.0.0.1:{port}"));
    c.retries = 2;
    c.timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = AwsKmsProvider::connect(c).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyUnavailable, "{err}");
    assert!(err.to_string().contains("after 3 attempt(s)"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A server that accepts and never answers: the timeout ends each attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_endpoint_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(2) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    let mut c = config("alias/x");
    c.endpoint = Some(format!("http://127.0.0.1:{port}"));
    c.retries = 1;
    c.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let err = AwsKmsProvider::connect(c).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(err.to_string().contains("after 2 attempt(s)"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    held.join().unwrap();
}

/// The key-source string, through the one vault configuration: an operator switches to KMS
/// by configuration alone, and the wraps are counted under the KMS key's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_source_string_opens_a_vault_on_kms() {
    use pci_vault_config::{KeySource, StoreConfig, VaultConfig};
    let keys = keys().await;
    let client = client();
    let alias = format!("alias/pci-vault-config-{}", std::process::id());
    client
        .call(
            "CreateAlias",
            &json!({ "AliasName": alias, "TargetKeyId": keys.k1 }),
        )
        .await
        .unwrap();
    let text = format!(
        "aws-kms:key={alias};region={REGION};endpoint={};timeout-ms=2000;retries=1",
        endpoint()
    );
    let source = KeySource::parse(&text).unwrap();
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
    vault.reveal(&t.id, &receipt.pin).await.unwrap();
    let wraps = opened.key_usage.wraps();
    assert_eq!(wraps.len(), 1);
    assert_eq!(wraps.first().unwrap().key_id.as_str(), keys.k1);
}
