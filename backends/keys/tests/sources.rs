//! Key sources against a real vault: rotation without restart, Kubernetes-style secret
//! mounts, and bad material refused with messages that never print a key.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault::conformance::visa_form;
use pci_vault::{ErrorCode, KeyProvider, SessionOptions, Vault};
use pci_vault_keys::{KeyDirectory, KeyFile};
use pci_vault_memory::MemoryStore;

fn b64(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

fn vault(store: &Arc<MemoryStore>, keys: Arc<dyn KeyProvider>) -> Vault {
    Vault::builder(store.clone(), keys).build().unwrap()
}

async fn sealed_session(vault: &Vault) -> (pci_vault::SessionId, pci_vault::Pin) {
    let t = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let r = vault.submit(&t.id, &visa_form()).await.unwrap();
    (t.id, r.pin)
}

#[tokio::test]
async fn key_file_rotation_takes_effect_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring");
    fs::write(&path, format!("k1:{}\n", b64(1))).unwrap();
    let provider = Arc::new(KeyFile::with_check_interval(&path, Duration::ZERO).unwrap());
    let store = Arc::new(MemoryStore::new());
    let vault = vault(&store, provider.clone());
    let (before, pin) = sealed_session(&vault).await;

    // Rotate: k2 becomes primary, k1 stays for unwrapping. Same provider, no restart.
    fs::write(&path, format!("k2:{}\nk1:{}\n", b64(2), b64(1))).unwrap();
    let (after, after_pin) = sealed_session(&vault).await;
    assert_eq!(provider.keyring().primary().as_str(), "k2");
    assert!(
        vault.reveal(&before, &pin).await.is_ok(),
        "a record sealed before the rotation reveals after it"
    );
    assert!(vault.reveal(&after, &after_pin).await.is_ok());

    // Bad new material is refused; the last good keyring stays in use.
    fs::write(&path, "k3:not-a-key\n").unwrap();
    let (third, third_pin) = sealed_session(&vault).await;
    assert_eq!(provider.keyring().primary().as_str(), "k2");
    assert!(vault.reveal(&third, &third_pin).await.is_ok());
}

#[tokio::test]
async fn unknown_key_id_triggers_an_immediate_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring");
    fs::write(&path, format!("k1:{}\n", b64(1))).unwrap();
    let store = Arc::new(MemoryStore::new());
    // A slow checker (once an hour) and a process that already rotated.
    let slow = vault(
        &store,
        Arc::new(KeyFile::with_check_interval(&path, Duration::from_secs(3600)).unwrap()),
    );
    fs::write(&path, format!("k2:{}\nk1:{}\n", b64(2), b64(1))).unwrap();
    let rotated = vault(&store, Arc::new(KeyFile::open(&path).unwrap()));
    let (id, pin) = sealed_session(&rotated).await;
    // The slow process meets key id k2 and reloads at once instead of failing.
    assert!(slow.reveal(&id, &pin).await.is_ok());
}

/// Lays out `keys` the way the kubelet mounts a secret: files in a timestamped directory,
/// `..data` pointing at it, and top-level links through `..data`.
fn mount_secret(root: &Path, generation: u32, keys: &[(&str, String)]) {
    let data = root.join(format!("..2026_11_25_{generation}"));
    fs::create_dir(&data).unwrap();
    for (name, content) in keys {
        fs::write(data.join(name), content).unwrap();
        let top = root.join(name);
        if fs::symlink_metadata(&top).is_err() {
            symlink(Path::new("..data").join(name), &top).unwrap();
        }
    }
    let tmp = root.join("..data_tmp");
    symlink(data.file_name().unwrap(), &tmp).unwrap();
    fs::rename(&tmp, root.join("..data")).unwrap();
}

#[tokio::test]
async fn kubernetes_secret_directory_rotates_atomically() {
    let dir = tempfile::tempdir().unwrap();
    mount_secret(
        dir.path(),
        1,
        &[("k1", b64(1)), ("k2", b64(2)), ("primary", "k1\n".into())],
    );
    let provider = Arc::new(KeyDirectory::with_check_interval(dir.path(), Duration::ZERO).unwrap());
    assert_eq!(provider.keyring().primary().as_str(), "k1");
    let store = Arc::new(MemoryStore::new());
    let vault = vault(&store, provider.clone());
    let (id, pin) = sealed_session(&vault).await;

    mount_secret(
        dir.path(),
        2,
        &[("k1", b64(1)), ("k2", b64(2)), ("primary", "k2\n".into())],
    );
    assert_eq!(provider.keyring().primary().as_str(), "k2");
    assert!(vault.reveal(&id, &pin).await.is_ok());
}

/// The kubelet publishes a new version of a Secret by switching `..data`, then adds the
/// top-level links of new names. A check between the two steps reads the new version whole
/// (its new primary with its new key), not a mix of the two.
#[tokio::test]
async fn a_check_in_the_middle_of_a_secret_update_reads_one_version() {
    let dir = tempfile::tempdir().unwrap();
    mount_secret(dir.path(), 1, &[("k1", b64(1)), ("primary", "k1\n".into())]);
    let provider = KeyDirectory::with_check_interval(dir.path(), Duration::ZERO).unwrap();
    assert_eq!(provider.keyring().primary().as_str(), "k1");

    // Version 2 adds k2 and makes it primary; `..data` points at it, the link `k2` at the
    // top is not there yet.
    let data = dir.path().join("..2026_11_25_2");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("k1"), b64(1)).unwrap();
    fs::write(data.join("k2"), b64(2)).unwrap();
    fs::write(data.join("primary"), "k2\n").unwrap();
    let tmp = dir.path().join("..data_tmp");
    symlink(data.file_name().unwrap(), &tmp).unwrap();
    fs::rename(&tmp, dir.path().join("..data")).unwrap();
    assert!(fs::symlink_metadata(dir.path().join("k2")).is_err());

    let ring = provider.keyring();
    assert_eq!(ring.primary().as_str(), "k2");
    assert_eq!(ring.key_ids().count(), 2);
}

/// Material that does not load is checked again a second later, not after the whole
/// interval: a Secret written in two steps by hand loads once the second lands.
#[tokio::test]
async fn bad_material_is_checked_again_soon() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring");
    fs::write(&path, format!("k1:{}\n", b64(1))).unwrap();
    let provider = KeyFile::with_check_interval(&path, Duration::from_secs(3600)).unwrap();
    // Force a check now (an unknown key id does), on material that does not load.
    fs::write(&path, "k2:not-a-key\n").unwrap();
    let unknown = pci_vault::WrappedKey {
        key_id: pci_vault::KeyId::new("k2").unwrap(),
        ciphertext: vec![0; 60],
    };
    assert!(provider.unwrap(&unknown, b"aad").await.is_err());
    assert_eq!(provider.keyring().primary().as_str(), "k1");

    fs::write(&path, format!("k2:{}\nk1:{}\n", b64(2), b64(1))).unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        provider.keyring().primary().as_str(),
        "k2",
        "checked again a second after the bad material, not an hour"
    );

    // Material that stays bad is checked again soon once, then at the interval.
    fs::write(&path, "k3:not-a-key\n").unwrap();
    assert!(provider.unwrap(&unknown_k3(), b"aad").await.is_err());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        provider.keyring().primary().as_str(),
        "k2",
        "the retry fails too"
    );
    fs::write(&path, format!("k3:{}\nk2:{}\n", b64(3), b64(2))).unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        provider.keyring().primary().as_str(),
        "k2",
        "after a failed retry, the next check waits the interval"
    );
}

fn unknown_k3() -> pci_vault::WrappedKey {
    pci_vault::WrappedKey {
        key_id: pci_vault::KeyId::new("k3").unwrap(),
        ciphertext: vec![0; 60],
    }
}

/// A `..data` link in a directory whose files do not link through it (not a Secret
/// volume, or one left behind) is not taken for the Secret's current version.
#[test]
fn a_stray_data_link_does_not_replace_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("old");
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join("k9"), b64(9)).unwrap();
    fs::write(stale.join("primary"), "k9\n").unwrap();
    symlink("old", dir.path().join("..data")).unwrap();
    fs::write(dir.path().join("k1"), b64(1)).unwrap();
    fs::write(dir.path().join("primary"), "k1\n").unwrap();
    let provider = KeyDirectory::open(dir.path()).unwrap();
    assert_eq!(provider.keyring().primary().as_str(), "k1");
}

#[test]
fn bad_directories_fail_at_start_without_printing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let err = KeyDirectory::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("has no file named primary"), "{err}");

    fs::write(dir.path().join("primary"), "k9").unwrap();
    fs::write(dir.path().join("k1"), b64(1)).unwrap();
    let err = KeyDirectory::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("primary key id is not in the keyring"),
        "{err}"
    );

    fs::write(dir.path().join("primary"), "k1").unwrap();
    let short = STANDARD.encode([5u8; 16]);
    fs::write(dir.path().join("k1"), &short).unwrap();
    let err = KeyDirectory::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("k1") && err.contains("16 bytes") && !err.contains(&short),
        "{err}"
    );

    let missing = KeyFile::open(dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("cannot be read"), "{missing}");
}

#[tokio::test]
async fn wrong_key_reports_key_unavailable_through_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring");
    fs::write(&path, format!("k1:{}\n", b64(1))).unwrap();
    let store = Arc::new(MemoryStore::new());
    let v1 = vault(&store, Arc::new(KeyFile::open(&path).unwrap()));
    let (id, _) = sealed_session(&v1).await;
    let other = dir.path().join("other");
    fs::write(&other, format!("k7:{}\n", b64(7))).unwrap();
    let v2 = vault(&store, Arc::new(KeyFile::open(&other).unwrap()));
    assert_eq!(
        v2.status(&id).await.unwrap_err().code(),
        ErrorCode::KeyUnavailable
    );
}

#[tokio::test]
async fn key_sources_open_into_working_providers() {
    use pci_vault_keys::KeySource;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyring");
    fs::write(&file, format!("k1:{}\n", b64(1))).unwrap();
    let mount = dir.path().join("mount");
    fs::create_dir(&mount).unwrap();
    mount_secret(&mount, 1, &[("k1", b64(1)), ("primary", "k1".into())]);
    let store = Arc::new(MemoryStore::new());
    let sources = [
        KeySource::Keyring(pci_vault_keys::parse_keyring(&format!("k1:{}", b64(1))).unwrap()),
        KeySource::File(file),
        KeySource::Directory(mount),
        KeySource::Development,
    ];
    for source in sources {
        let vault = vault(&store, source.open().unwrap());
        let (id, pin) = sealed_session(&vault).await;
        assert!(vault.reveal(&id, &pin).await.is_ok());
    }
    let missing = KeySource::File(dir.path().join("absent"))
        .open()
        .map(|_| ())
        .unwrap_err();
    assert!(missing.to_string().contains("cannot be read"));
}
