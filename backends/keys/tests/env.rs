//! The environment-variable source. This file holds one test, so its binary has no other
//! thread that could read the environment while the test changes it.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault_keys::from_env;

fn set(var: &str, value: &str) {
    #[expect(
        unsafe_code,
        reason = "`set_var` is unsafe because the environment is shared by every thread; this \
                  binary runs a single test, so nothing reads the environment concurrently"
    )]
    unsafe {
        std::env::set_var(var, value);
    }
}

#[test]
fn environment_variable_source() {
    let var = "PCI_VAULT_KEYS_TEST";
    assert_eq!(
        from_env(var).unwrap_err().to_string(),
        format!("key material from {var}: is not set")
    );

    let zeros = STANDARD.encode([0u8; 32]);
    set(var, &format!("k1:{zeros}"));
    let err = from_env(var).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("key material from {var}: ")),
        "{err}"
    );
    assert!(err.contains("all zeros") && !err.contains(&zeros), "{err}");

    let (k1, k2) = (STANDARD.encode([1u8; 32]), STANDARD.encode([2u8; 32]));
    set(var, &format!("k2:{k2},k1:{k1}"));
    let ring = from_env(var).unwrap();
    assert_eq!(ring.primary().as_str(), "k2");
    assert!(!format!("{ring:?}").contains(&k2));
}
