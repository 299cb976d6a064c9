//! `uniffi-bindgen`: generates the Python, Kotlin and Swift sources of `pci-vault-uniffi`
//! from its compiled library, with the same uniffi version the library was built with.
//! maturin runs it to put the Python module in the wheel; `build.sh` runs it for Kotlin
//! and Swift.
//!
//! ```sh
//! cargo run -p pci-vault-uniffi --features cli --bin uniffi-bindgen -- generate \
//!     --library target/debug/libpci_vault_uniffi.so --language kotlin --out-dir out
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
