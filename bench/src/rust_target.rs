//! Full cycles through the Rust API, in this process.

use std::sync::Arc;

use pci_vault::{
    EphemeralStore, ExposeSecret, FormInput, Keyring, SessionOptions, SystemClock, Vault,
};
use pci_vault_memory::{MemoryLimits, MemoryStore};
use pci_vault_redis::{RedisOptions, RedisStore};

use crate::drive::{Plan, drive};
use crate::probes::{Probes, RedisCpu};
use crate::report::RunResult;

const CARD: &str = "4242424242424242";

/// One full cycle; an error names the step that failed.
async fn cycle(vault: &Vault, options: &SessionOptions, input: &FormInput) -> Result<(), String> {
    let ticket = vault
        .create_session(options)
        .await
        .map_err(|e| format!("create: {}", e.code()))?;
    let receipt = vault
        .submit(&ticket.id, input)
        .await
        .map_err(|e| format!("submit: {}", e.code()))?;
    let form = vault
        .reveal(&ticket.id, &receipt.pin)
        .await
        .map_err(|e| format!("reveal: {}", e.code()))?;
    let ok = form
        .get("card_number")
        .is_some_and(|v| v.expose_secret() == CARD)
        && form.get("cvc").is_some_and(|v| v.expose_secret() == "123");
    if ok {
        Ok(())
    } else {
        Err("reveal returned other values".into())
    }
}

pub(crate) async fn run_memory(plan: &Plan) -> Result<RunResult, String> {
    let limits = MemoryLimits {
        max_entries: 50_000_000,
        max_bytes: 16 << 30,
    };
    let store = Arc::new(MemoryStore::with_clock(limits, Arc::new(SystemClock)));
    run(
        plan,
        store,
        Probes {
            redis: None,
            server_pid: None,
        },
    )
    .await
}

pub(crate) async fn run_redis(plan: &Plan, url: &str) -> Result<RunResult, String> {
    let store = RedisStore::connect(RedisOptions::new(url))
        .await
        .map_err(|e| e.to_string())?;
    let probes = Probes {
        redis: Some(RedisCpu::connect(url).await?),
        server_pid: None,
    };
    run(plan, Arc::new(store), probes).await
}

async fn run(
    plan: &Plan,
    store: Arc<dyn EphemeralStore>,
    probes: Probes,
) -> Result<RunResult, String> {
    let vault = Vault::builder(store, Arc::new(Keyring::ephemeral()))
        .build()
        .map_err(|e| e.to_string())?;
    let options = Arc::new(SessionOptions {
        ttl: plan.ttl,
        ..SessionOptions::default()
    });
    let input = Arc::new(
        FormInput::new()
            .with("card_number", CARD)
            .with("expiry", "12/34")
            .with("cvc", "123")
            .with("cardholder_name", "Ada Lovelace"),
    );
    let one = move || {
        let (vault, options, input) = (vault.clone(), options.clone(), input.clone());
        async move { cycle(&vault, &options, &input).await }
    };
    drive(plan, one, &probes).await
}
