#![doc = include_str!("../README.md")]
// Test support: a failed setup or expectation is a failed test, so it panics. The lint
// allowances for test code are set here once, for everything the suites share.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed setup or expectation is a failed test"
)]

pub mod cards;
pub mod harness;
pub mod keys;
pub mod memory;
pub mod process;
pub mod proxy;
pub mod redis;
pub mod secrets;
pub mod vaults;
