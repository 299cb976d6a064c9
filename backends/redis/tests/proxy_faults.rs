//! Faults on the network between the vault and a real redis-server: a TCP proxy resets the
//! connection when the reply of a chosen command comes back (the command applied, its
//! reply is lost) or holds replies past the timeout (they arrive late). Each operation —
//! create, submit, reveal with the right PIN, a wrong PIN, the last wrong PIN, cancel — is
//! run with each fault on each of its store commands, and the invariants are checked after
//! each run: the form is revealed at most once and only once its tombstone is stored, the
//! customer's own applied submit answers its PIN (or `STORE_UNAVAILABLE`, never
//! `ALREADY_SUBMITTED`), and no session is left submitted with every attempt used once the
//! grace period has passed. The same faults injected in-process run against every store in
//! the conformance suite (`faults` group).

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::sync::Arc;
use std::time::Duration;

use pci_vault::conformance::faults::{Prepared, Step};
use pci_vault::conformance::test_keyring;
use pci_vault::{Error, SessionState, Vault};
use pci_vault_redis::{RedisOptions, RedisStore};
use pci_vault_testkit::proxy::FaultProxy;
use pci_vault_testkit::redis::RedisServer;

/// The store timeout of these tests.
const TIMEOUT: Duration = Duration::from_millis(300);
/// The vaults' attempt grace: twice the store timeout.
const GRACE: Duration = Duration::from_millis(600);

/// Store commands each step sends: create 1; submit and cancel read then write; a reveal
/// claims (reads and counts the attempt) then, for an outcome, writes the tombstone.
fn commands(step: Step) -> u64 {
    match step {
        Step::Create | Step::RevealWrong => 1,
        _ => 2,
    }
}

#[derive(Debug, Clone, Copy)]
enum NetFault {
    /// The connection is reset when the reply of the command comes back.
    Reset(u64),
    /// Every reply is held for 1.5 × the timeout: the call times out, the reply comes late.
    Stall,
}

async fn vault_through(proxy: &FaultProxy) -> Vault {
    let store = RedisStore::connect(RedisOptions::new(proxy.url()).with_timeout(TIMEOUT))
        .await
        .unwrap();
    Vault::builder(Arc::new(store), Arc::new(test_keyring()))
        .attempt_grace(GRACE)
        .build()
        .unwrap()
}

async fn one_case(server: &RedisServer, step: Step, fault: NetFault) {
    let case = format!("{step:?} with {fault:?}");
    let proxy = FaultProxy::start(server.addr());
    let vault = vault_through(&proxy).await;
    let mut ready = step.prepare(&vault).await;
    match fault {
        NetFault::Reset(n) => proxy.reset_on_reply(n),
        NetFault::Stall => proxy.stall_replies(TIMEOUT * 3 / 2),
    }
    let answered = step.run(&vault, &mut ready).await;
    proxy.disarm_reset();
    proxy.end_stall();
    // A write's lost reply is resolved by repeating the write: a reset on a write's reply
    // never makes the operation fail. (A read whose reply is lost is not repeated: submit
    // and cancel read first, and answer STORE_UNAVAILABLE having changed nothing.)
    let reads_first = matches!(step, Step::Submit | Step::Cancel);
    if matches!(fault, NetFault::Reset(n) if !(reads_first && n == 1)) {
        assert!(
            !matches!(&answered, Err(Error::StoreUnavailable(_))),
            "{case}: {answered:?}"
        );
    }
    let Prepared { id, mut pin } = ready;
    let Some(id) = id else {
        return; // a create whose outcome is unknown: nobody knows the id
    };
    let status = until_answered(|| vault.status(&id)).await;
    step.assert_truthful(&answered, status.state, &case);
    if let (Step::Submit, Ok(Some(p))) = (step, &answered) {
        pin = Some(p.clone());
    }
    if status.state == SessionState::Submitted && status.attempts_left == 0 {
        tokio::time::sleep(GRACE + Duration::from_millis(100)).await;
        let after = until_answered(|| vault.status(&id)).await;
        assert_ne!(after.state, SessionState::Submitted, "{case}: stranded");
    }
    let mut forms = usize::from(step == Step::RevealRight && answered.is_ok());
    if let Some(pin) = &pin {
        for _ in 0..2 {
            forms += usize::from(vault.reveal(&id, pin).await.is_ok());
        }
    }
    assert!(forms <= 1, "{case}: {forms} forms");
}

/// Retries a read until the store answers (the proxy may have just reset the connection).
async fn until_answered<T, F, Fut>(call: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = pci_vault::Result<T>>,
{
    for _ in 0..20 {
        match call().await {
            Err(Error::StoreUnavailable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other.unwrap(),
        }
    }
    panic!("the store did not answer again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_of_every_operation_with_its_reply_lost_or_late() {
    let server = RedisServer::start(&[]);
    for step in Step::ALL {
        for n in 1..=commands(step) {
            one_case(&server, step, NetFault::Reset(n)).await;
        }
        one_case(&server, step, NetFault::Stall).await;
    }
}
