//! Sealed records, as read from a store that someone else may have written.
//!
//! `SealedRecord::decode` never panics and refuses anything malformed with
//! `INTEGRITY_ERROR`. Past the decoder, a record that was altered (bytes flipped, cut,
//! added, or moved in from another session), even with its unkeyed checksum recomputed as
//! an attacker can, never opens: every vault operation answers `INTEGRITY_ERROR`,
//! `KEY_UNAVAILABLE` (the key id was changed) or, for agent-side calls, `NOT_FOUND` (the
//! tenant was changed), and leaves the store exactly as it was. Every record the vault
//! itself writes, in every state, decodes again with the tenant and key id it was made with.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pci_vault::conformance::{amex_form, visa_form};
use pci_vault::internal::SealedRecord;
use pci_vault::{ErrorCode, KeyId, Metadata, Pin, SessionId, SessionOptions, Tenant, Vault};
use pci_vault_fuzz::{Fixture, fix_checksum, run, with_checksum};

#[derive(Arbitrary, Debug)]
enum Input {
    /// Any bytes at all.
    Raw(Vec<u8>),
    /// Any bytes with a valid checksum appended, so the structural decoder behind the
    /// checksum is explored.
    Checksummed(Vec<u8>),
    /// A real record of a session in some state, then edited.
    Altered {
        plan: Plan,
        edits: Vec<Edit>,
        fix_checksum: bool,
    },
    /// Another session's real record put under this session's key, then edited.
    Moved {
        victim: Plan,
        donor: Plan,
        edits: Vec<Edit>,
        fix_checksum: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Plan {
    other_tenant: bool,
    metadata: bool,
    amex: bool,
    pin_length: u8,
    max_attempts: u8,
    progress: Progress,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Progress {
    Pending,
    Submitted,
    OneWrongPin,
    Revealed,
    Cancelled,
    Locked,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Flip { at: u16, mask: u8 },
    Set { at: u16, byte: u8 },
    Truncate { to: u16 },
    Append(Vec<u8>),
    Insert { at: u16, bytes: Vec<u8> },
    Remove { at: u16, len: u8 },
}

fuzz_target!(|input: Input| match input {
    Input::Raw(bytes) => {
        if decodes(&bytes) {
            plant(&bytes);
        }
    }
    Input::Checksummed(body) => {
        let bytes = with_checksum(&body);
        if decodes(&bytes) {
            plant(&bytes);
        }
    }
    Input::Altered {
        plan,
        edits,
        fix_checksum: fix,
    } => {
        let fx = Fixture::new();
        let (vault, _) = fx.vault();
        let session = make(&fx, &vault, &plan);
        let mut bytes = session.bytes.clone();
        apply(&mut bytes, &edits, fix);
        probe(&fx, &vault, &session, &bytes);
    }
    Input::Moved {
        victim,
        donor,
        edits,
        fix_checksum: fix,
    } => {
        let fx = Fixture::new();
        let (vault, _) = fx.vault();
        let victim = make(&fx, &vault, &victim);
        let donor = make(&fx, &vault, &donor);
        let mut bytes = donor.bytes.clone();
        apply(&mut bytes, &edits, fix);
        probe(&fx, &vault, &victim, &bytes);
    }
});

/// Decodes untrusted bytes and checks what an accepted record promises.
fn decodes(bytes: &[u8]) -> bool {
    match SealedRecord::decode(bytes) {
        Ok(record) => {
            let tenant = record.tenant();
            assert!(Tenant::new(tenant.as_str()).is_ok());
            let wrapped = record.wrapped_dek();
            assert!(KeyId::new(wrapped.key_id.as_str()).is_ok());
            assert!(wrapped.ciphertext.len() <= pci_vault::WrappedKey::MAX_CIPHERTEXT_LEN);
            let again = SealedRecord::decode(bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again.tenant(), tenant);
            assert_eq!(again.wrapped_dek(), wrapped);
            let _ = format!("{record:?}");
            true
        }
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::IntegrityError);
            assert_eq!(e.to_string(), "stored record failed its integrity check");
            false
        }
    }
}

/// A session the target created and drove to some state.
struct Session {
    id: SessionId,
    key: String,
    tenant: Tenant,
    pin: Pin,
    bytes: Vec<u8>,
}

fn make(fx: &Fixture, vault: &Vault, plan: &Plan) -> Session {
    let tenant = if plan.other_tenant {
        Tenant::new("acme").unwrap_or_else(|e| panic!("{e}"))
    } else {
        Tenant::default()
    };
    let vault = vault.for_tenant(tenant.clone());
    let metadata = if plan.metadata {
        Metadata::new([("conversation", "c-1"), ("order", "o-2")])
    } else {
        Ok(Metadata::default())
    };
    let options = SessionOptions::default()
        .with_pin_length(4 + plan.pin_length % 9)
        .with_max_attempts(1 + plan.max_attempts % 10)
        .with_metadata(metadata.unwrap_or_else(|e| panic!("{e}")));
    let before = fx.entries();
    let ticket = run(vault.create_session(&options)).unwrap_or_else(|e| panic!("{e}"));
    let key = Fixture::new_key(&before, &fx.entries());
    let mut pin = Pin::parse("0000").unwrap_or_else(|e| panic!("{e}"));
    if !matches!(plan.progress, Progress::Pending | Progress::Cancelled) {
        let form = if plan.amex { amex_form() } else { visa_form() };
        pin = run(vault.submit(&ticket.id, &form))
            .unwrap_or_else(|e| panic!("{e}"))
            .pin;
    }
    // A PIN of another length is always wrong.
    let n = pin.expose_secret().len();
    let wrong =
        Pin::parse(&"9".repeat(if n >= 12 { 4 } else { n + 1 })).unwrap_or_else(|e| panic!("{e}"));
    let id = ticket.id;
    match plan.progress {
        Progress::Pending | Progress::Submitted => {}
        Progress::OneWrongPin => {
            let _ = run(vault.reveal(&id, &wrong));
        }
        Progress::Revealed => {
            run(vault.reveal(&id, &pin)).unwrap_or_else(|e| panic!("{e}"));
        }
        Progress::Cancelled => run(vault.cancel(&id)).unwrap_or_else(|e| panic!("{e}")),
        Progress::Locked => {
            for _ in 0..options.max_attempts {
                let _ = run(vault.reveal(&id, &wrong));
            }
            let state = run(vault.status(&id)).map(|s| s.state);
            assert_eq!(state.ok(), Some(pci_vault::SessionState::Locked));
        }
    }
    let bytes = fx.raw(&key);
    // What the vault writes, it reads back: the record decodes, names its tenant and key.
    let decoded = SealedRecord::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.tenant(), &tenant);
    assert_eq!(decoded.wrapped_dek().key_id.as_str(), "conformance-k1");
    Session {
        id,
        key,
        tenant,
        pin,
        bytes,
    }
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit], fix: bool) {
    for edit in edits.iter().take(16) {
        let n = bytes.len();
        let at = |i: u16, len: usize| usize::from(i) % len.max(1);
        match edit {
            Edit::Flip { at: i, mask } if n > 0 => bytes[at(*i, n)] ^= mask,
            Edit::Set { at: i, byte } if n > 0 => bytes[at(*i, n)] = *byte,
            Edit::Truncate { to } => bytes.truncate(at(*to, n + 1)),
            Edit::Append(more) => bytes.extend_from_slice(more),
            Edit::Insert { at: i, bytes: more } => {
                let p = at(*i, n + 1);
                bytes.splice(p..p, more.iter().copied());
            }
            Edit::Remove { at: i, len } if n > 0 => {
                let p = at(*i, n);
                let end = (p + usize::from(*len)).min(n);
                bytes.drain(p..end);
            }
            _ => {}
        }
    }
    if fix {
        fix_checksum(bytes);
    }
}

/// Puts `bytes` in place of the record of a fresh pending session and calls every
/// operation on it.
fn plant(bytes: &[u8]) {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    let plan = Plan {
        other_tenant: false,
        metadata: false,
        amex: false,
        pin_length: 2,
        max_attempts: 4,
        progress: Progress::Pending,
    };
    let session = make(&fx, &vault, &plan);
    probe(&fx, &vault, &session, bytes);
}

/// Writes `bytes` under `session`'s key and calls status, submit, reveal (with the right
/// PIN) and cancel. Unless the bytes are the session's own, every call fails with a code
/// that reveals nothing, and the store stays exactly as the attacker left it.
fn probe(fx: &Fixture, vault: &Vault, session: &Session, bytes: &[u8]) {
    decodes(bytes);
    if bytes == session.bytes.as_slice() {
        let owner = vault.for_tenant(session.tenant.clone());
        assert!(run(owner.status(&session.id)).is_ok());
        return;
    }
    fx.overwrite(&session.key, bytes);
    let before = fx.entries();
    let agent = vault.for_tenant(session.tenant.clone());
    let agent_codes = [
        ErrorCode::IntegrityError,
        ErrorCode::KeyUnavailable,
        ErrorCode::NotFound,
    ];
    let customer_codes = [ErrorCode::IntegrityError, ErrorCode::KeyUnavailable];
    let outcomes = [
        (
            "status",
            run(agent.status(&session.id)).map(|_| ()),
            &agent_codes[..],
        ),
        (
            "submit",
            run(agent.submit(&session.id, &visa_form())).map(|_| ()),
            &customer_codes[..],
        ),
        (
            "reveal",
            run(agent.reveal(&session.id, &session.pin)).map(|_| ()),
            &agent_codes[..],
        ),
        ("cancel", run(agent.cancel(&session.id)), &agent_codes[..]),
    ];
    for (what, outcome, allowed) in outcomes {
        match outcome {
            Ok(()) => panic!("{what} accepted an altered record"),
            Err(e) => assert!(allowed.contains(&e.code()), "{what} answered {e:?}"),
        }
    }
    assert_eq!(fx.entries(), before, "a call on an altered record wrote");
}
