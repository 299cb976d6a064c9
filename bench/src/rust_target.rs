//! Full cycles through the Rust API, in this process.

use std::sync::Arc;

use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use pci_vault::{
    EphemeralStore, ErrorCode, ExposeSecret, FormInput, Keyring, Pin, SessionOptions, SystemClock,
    Vault,
};
use pci_vault_memory::{MemoryLimits, MemoryStore};
use pci_vault_redis::{MinReplicas, RedisOptions, RedisStore};

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
    let limits = MemoryLimits::default()
        .with_max_entries(50_000_000)
        .with_max_bytes(16 << 30);
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

async fn connect_redis(url: &str, min_replicas: Option<MinReplicas>) -> Result<RedisStore, String> {
    let mut options = RedisOptions::new(url);
    options.min_replicas = min_replicas;
    RedisStore::connect(options)
        .await
        .map_err(|e| e.to_string())
}

pub(crate) async fn run_redis(
    plan: &Plan,
    url: &str,
    min_replicas: Option<MinReplicas>,
) -> Result<RunResult, String> {
    let store = connect_redis(url, min_replicas).await?;
    let probes = Probes {
        redis: Some(RedisCpu::connect(url).await?),
        server_pid: None,
    };
    run(plan, Arc::new(store), probes).await
}

fn form() -> FormInput {
    FormInput::new()
        .with("card_number", CARD)
        .with("expiry", "12/34")
        .with("cvc", "123")
        .with("cardholder_name", "Ada Lovelace")
}

/// A PIN of the same length that is not `pin`.
fn wrong(pin: &Pin) -> Result<Pin, String> {
    let digits: String = pin
        .expose_secret()
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            if i == 0 {
                char::from(b'0' + (b - b'0' + 1) % 10)
            } else {
                char::from(b)
            }
        })
        .collect();
    Pin::parse(&digits).map_err(|e| e.to_string())
}

/// One batch of [`round_trips`]: the operations of `steps`, on a fresh session.
async fn steps(
    vault: &Vault,
    options: &SessionOptions,
    input: &FormInput,
    steps: &str,
) -> Result<(), String> {
    let ticket = vault
        .create_session(options)
        .await
        .map_err(|e| format!("create: {}", e.code()))?;
    if steps == "create" {
        return Ok(());
    }
    let receipt = vault
        .submit(&ticket.id, input)
        .await
        .map_err(|e| format!("submit: {}", e.code()))?;
    match steps {
        "submit" => Ok(()),
        "reveal" => vault
            .reveal(&ticket.id, &receipt.pin)
            .await
            .map(drop)
            .map_err(|e| format!("reveal: {}", e.code())),
        _ => match vault.reveal(&ticket.id, &wrong(&receipt.pin)?).await {
            Err(e) if e.code() == ErrorCode::WrongPin => Ok(()),
            Err(e) => Err(format!("wrong PIN: {}", e.code())),
            Ok(_) => Err("a wrong PIN revealed the form".into()),
        },
    }
}

/// Prints `line` and waits for the caller's go-ahead (a line on stdin).
fn handshake(line: &str) -> Result<(), String> {
    println!("{line}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut go = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut go)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// `--round-trips`: one warm-up batch of each kind, then `per_batch` of each kind between
/// `mark NAME` and `end NAME`, so that a counting proxy in front of Redis can be read
/// between them.
pub(crate) async fn round_trips(
    url: &str,
    min_replicas: Option<MinReplicas>,
    per_batch: usize,
    ttl: Duration,
) -> Result<(), String> {
    let store = connect_redis(url, min_replicas).await?;
    let vault = Vault::builder(Arc::new(store), Arc::new(Keyring::ephemeral()))
        .build()
        .map_err(|e| e.to_string())?;
    let options = SessionOptions::default().with_ttl(ttl);
    let input = form();
    let kinds = ["create", "submit", "reveal", "reveal-wrong"];
    for kind in kinds {
        steps(&vault, &options, &input, kind).await?;
    }
    for kind in kinds {
        handshake(&format!("mark {kind}"))?;
        for _ in 0..per_batch {
            steps(&vault, &options, &input, kind).await?;
        }
        handshake(&format!("end {kind}"))?;
    }
    Ok(())
}

async fn run(
    plan: &Plan,
    store: Arc<dyn EphemeralStore>,
    probes: Probes,
) -> Result<RunResult, String> {
    let vault = Vault::builder(store, Arc::new(Keyring::ephemeral()))
        .build()
        .map_err(|e| e.to_string())?;
    let options = Arc::new(SessionOptions::default().with_ttl(plan.ttl));
    let input = Arc::new(form());
    let one = move || {
        let (vault, options, input) = (vault.clone(), options.clone(), input.clone());
        async move { cycle(&vault, &options, &input).await }
    };
    drive(plan, one, &probes).await
}
