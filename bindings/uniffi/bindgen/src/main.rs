//! `uniffi-bindgen`: generates the Python, Kotlin and Swift sources of `pci-vault-uniffi`
//! from its compiled library, with the same uniffi version the library was built with.
//!
//! ```sh
//! cargo run -p pci-vault-uniffi-bindgen -- generate \
//!     --library target/debug/libpci_vault_uniffi.so --language python --out-dir out
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
