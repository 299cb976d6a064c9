//! Micro-benchmarks of the core's hot paths: sealing and opening a record, PIN generation
//! and verification, card validation, and whole operations on the memory store.
//!
//! ```sh
//! cargo bench -p pci-vault --features bench --bench core
//! ```

#![expect(clippy::unwrap_used, reason = "benchmark code")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use pci_vault::card::{validate_cvc, validate_expiry, validate_name, validate_pan};
use pci_vault::internal::{RecordFixture, card_form};
use pci_vault::{Keyring, Pin, SessionId, SessionOptions, SystemClock, Vault};
use pci_vault_memory::{MemoryLimits, MemoryStore};

fn record(c: &mut Criterion) {
    let fixture = RecordFixture::new();
    let sealed = fixture.seal();
    c.bench_function("record/seal (4 fields, encode, tag)", |b| {
        b.iter(|| black_box(fixture.seal()))
    });
    c.bench_function("record/open (decode, unwrap, verify, 4 fields)", |b| {
        b.iter(|| black_box(fixture.open(black_box(&sealed))))
    });
}

fn pin(c: &mut Criterion) {
    let fixture = RecordFixture::new();
    c.bench_function("pin/generate 6 digits", |b| {
        b.iter(|| black_box(Pin::generate(6).unwrap()))
    });
    c.bench_function("pin/verifier (HMAC-SHA256)", |b| {
        b.iter(|| black_box(fixture.pin_verifier(b"123456")))
    });
    c.bench_function("pin/verify (constant time)", |b| {
        b.iter(|| black_box(fixture.verify_pin(b"654321")))
    });
}

fn card(c: &mut Criterion) {
    let now = std::time::SystemTime::now();
    c.bench_function("card/validate_pan", |b| {
        b.iter(|| black_box(validate_pan(black_box("4242 4242 4242 4242"))))
    });
    c.bench_function("card/validate_expiry", |b| {
        b.iter(|| black_box(validate_expiry(black_box("12/34"), now)))
    });
    c.bench_function("card/validate_cvc", |b| {
        b.iter(|| black_box(validate_cvc(black_box("123"), None)))
    });
    c.bench_function("card/validate_name", |b| {
        b.iter(|| black_box(validate_name(black_box("Ada Lovelace"))))
    });
    let form = card_form();
    c.bench_function("card/whole form", |b| {
        b.iter(|| black_box(RecordFixture::validate_form(&form)))
    });
    c.bench_function("session/id generate", |b| {
        b.iter(|| black_box(SessionId::generate()))
    });
}

fn operations(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Finished sessions stay as tombstones until their TTL: a short TTL and a large bound
    // keep the store from filling during a long measurement.
    let limits = MemoryLimits::default()
        .with_max_entries(10_000_000)
        .with_max_bytes(8 << 30);
    let store = MemoryStore::with_clock(limits, Arc::new(SystemClock));
    let vault = Vault::builder(Arc::new(store), Arc::new(Keyring::ephemeral()))
        .build()
        .unwrap();
    let options = SessionOptions::default().with_ttl(std::time::Duration::from_secs(1));
    let form = card_form();
    c.bench_function("vault/full cycle on memory (create, submit, reveal)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let t = vault.create_session(&options).await.unwrap();
                let r = vault.submit(&t.id, &form).await.unwrap();
                black_box(vault.reveal(&t.id, &r.pin).await.unwrap());
            })
        })
    });
}

criterion_group!(benches, record, pin, card, operations);
criterion_main!(benches);
