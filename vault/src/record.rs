//! The sealed record: everything the store holds about one session, in one versioned,
//! authenticated binary value.
//!
//! ```text
//! magic "PVR" | record format (u8, 2)
//! state (u8) | tenant (str8)
//! created_at, expires_at, submitted_at (i64 ms since the epoch; submitted_at -1 = none)
//! pin_length, max_attempts, attempts_used (u8 each)
//! form: count (u8), then per field: name (str8), kind (u8), required (u8)
//! metadata: count (u8), then per entry: key (str8), value (str16)
//! wrapped data key: key id (str8), ciphertext (bytes16)
//! PIN verifier: present (u8), then 32 bytes when present
//! card summary: present (u8), then brand (u8) and masked number (str8) when present
//! sealed fields: count (u8), then per field: name (str8), nonce‖ciphertext‖tag (bytes16)
//! ---- end of body
//! tag: AES-256-GCM (GMAC) under the data key over the body and the session id: nonce ‖ tag (28)
//! checksum: CRC-32 of everything above (4 bytes; corruption detection, not authentication)
//! ```
//!
//! `str8`/`bytes16` are a big-endian u8/u16 length and the bytes. The record carries no
//! clear field, PIN or key: fields are AES-256-GCM ciphertexts, the PIN is only its
//! verifier, the data key is wrapped by the key provider.
//!
//! The card summary (brand and first 6 / last 4 digits) of a submitted record is clear,
//! so `status` shows it without the PIN; it is part of the body, so the record tag
//! authenticates it with everything else: a summary altered, or moved from another record,
//! fails the tag like any other change. Tombstones drop it with the fields.
//!
//! Decoding untrusted bytes never panics: any malformed, truncated, extended or altered
//! input is an [`Error::IntegrityError`].

use crate::card::Brand;
use crate::crypto::{MAC_LEN, RECORD_TAG_LEN, SessionCrypto, record_checksum};
use crate::error::{Error, Result};
use crate::form::{CardSummary, FieldKind, FieldName, FieldSpec, FormSpec, field_name};
use crate::keys::{KeyId, WrappedKey};
use crate::session::{Metadata, SessionOptions, SessionState};
use crate::tenant::Tenant;

const MAGIC: &[u8; 3] = b"PVR";

/// The layout version written after the magic. Layout 1 had no card summary; its records
/// are refused (sessions live at most 24 h: a deployment drains them before upgrading).
pub(crate) const RECORD_FORMAT: u8 = 2;
const CHECKSUM_LEN: usize = 4;

/// A session record as stored, authenticated against its session's data key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub(crate) state: SessionState,
    pub(crate) tenant: Tenant,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) submitted_at: Option<i64>,
    pub(crate) pin_length: u8,
    pub(crate) max_attempts: u8,
    pub(crate) attempts_used: u8,
    pub(crate) form: FormSpec,
    pub(crate) metadata: Metadata,
    pub(crate) wrapped_dek: WrappedKey,
    pub(crate) pin_verifier: Option<[u8; MAC_LEN]>,
    /// The submitted card's brand and masked number, in clear (see the module docs).
    pub(crate) card: Option<CardSummary>,
    pub(crate) sealed_fields: Vec<(FieldName, Vec<u8>)>,
}

impl std::fmt::Debug for SealedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRecord")
            .field("state", &self.state)
            .field("tenant", &self.tenant)
            .field("expires_at", &self.expires_at)
            .field("attempts_used", &self.attempts_used)
            .field("max_attempts", &self.max_attempts)
            .field("key_id", &self.wrapped_dek.key_id)
            .field("sealed_fields", &self.sealed_fields.len())
            .finish_non_exhaustive()
    }
}

/// A decoded record whose tag has not been checked yet. Only the fields needed to find the
/// key that checks it are readable.
pub struct UnverifiedRecord {
    record: SealedRecord,
    body: Vec<u8>,
    tag: [u8; RECORD_TAG_LEN],
}

impl std::fmt::Debug for UnverifiedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnverifiedRecord")
            .field("record", &self.record)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl UnverifiedRecord {
    /// The tenant the record claims to belong to.
    pub fn tenant(&self) -> &Tenant {
        &self.record.tenant
    }

    /// The wrapped data key that the tag is checked with.
    pub fn wrapped_dek(&self) -> &WrappedKey {
        &self.record.wrapped_dek
    }

    /// Checks the tag; only then is the record usable.
    pub(crate) fn verify(self, crypto: &SessionCrypto) -> Result<SealedRecord> {
        if crypto.verify_record_tag(&self.body, &self.tag) {
            Ok(self.record)
        } else {
            Err(Error::IntegrityError)
        }
    }
}

impl SealedRecord {
    pub(crate) fn pending(
        tenant: Tenant,
        now: i64,
        options: &SessionOptions,
        wrapped_dek: WrappedKey,
    ) -> Self {
        let ttl_ms = i64::try_from(options.ttl.as_millis()).unwrap_or(i64::MAX);
        SealedRecord {
            state: SessionState::Pending,
            tenant,
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
            submitted_at: None,
            pin_length: options.pin_length,
            max_attempts: options.max_attempts,
            attempts_used: 0,
            form: options.form.clone(),
            metadata: options.metadata.clone(),
            wrapped_dek,
            pin_verifier: None,
            card: None,
            sealed_fields: Vec::new(),
        }
    }

    /// The same session in a terminal state, without any secret data.
    pub(crate) fn tombstone(&self, state: SessionState) -> Self {
        debug_assert!(state.is_terminal());
        SealedRecord {
            state,
            tenant: self.tenant.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            submitted_at: self.submitted_at,
            pin_length: self.pin_length,
            max_attempts: self.max_attempts,
            attempts_used: self.attempts_used,
            form: self.form.clone(),
            metadata: self.metadata.clone(),
            wrapped_dek: self.wrapped_dek.clone(),
            pin_verifier: None,
            card: None,
            sealed_fields: Vec::new(),
        }
    }

    /// The session's state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Wrong PINs still allowed.
    pub fn attempts_left(&self) -> u8 {
        if self.state == SessionState::Locked {
            0
        } else {
            self.max_attempts.saturating_sub(self.attempts_used)
        }
    }

    /// The first bytes of the encoding of every submitted record of `tenant`: a store takes
    /// a PIN attempt's claim only on a value that starts with them, so a guess on a session
    /// that is not submitted, or that another tenant names, takes no attempt.
    pub(crate) fn submitted_prefix(tenant: &Tenant) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + tenant.as_str().len());
        out.extend_from_slice(MAGIC);
        out.push(RECORD_FORMAT);
        out.push(SessionState::Submitted.to_byte());
        put_str8(&mut out, tenant.as_str());
        out
    }

    /// Encodes the record and authenticates it with the session's keys.
    pub(crate) fn encode(&self, crypto: &SessionCrypto) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            256 + self
                .sealed_fields
                .iter()
                .map(|(n, v)| n.len() + v.len() + 3)
                .sum::<usize>(),
        );
        out.extend_from_slice(MAGIC);
        out.push(RECORD_FORMAT);
        out.push(self.state.to_byte());
        put_str8(&mut out, self.tenant.as_str());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.submitted_at.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&[self.pin_length, self.max_attempts, self.attempts_used]);
        put_count(&mut out, self.form.fields().len());
        for f in self.form.fields() {
            put_str8(&mut out, f.name());
            out.push(f.kind().to_byte());
            out.push(u8::from(f.required()));
        }
        put_count(&mut out, self.metadata.len());
        for (k, v) in self.metadata.iter() {
            put_str8(&mut out, k);
            put_bytes16(&mut out, v.as_bytes());
        }
        put_str8(&mut out, self.wrapped_dek.key_id.as_str());
        put_bytes16(&mut out, &self.wrapped_dek.ciphertext);
        match &self.pin_verifier {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
        match &self.card {
            Some(card) => {
                out.push(1);
                out.push(card.brand.to_byte());
                put_str8(&mut out, &card.masked_number);
            }
            None => out.push(0),
        }
        put_count(&mut out, self.sealed_fields.len());
        for (name, sealed) in &self.sealed_fields {
            put_str8(&mut out, name);
            put_bytes16(&mut out, sealed);
        }
        let tag = crypto.record_tag(&out);
        out.extend_from_slice(&tag);
        let checksum = record_checksum(&out);
        out.extend_from_slice(&checksum);
        out
    }

    /// Decodes untrusted bytes. Checks the checksum and every structural rule; the tag is
    /// checked later, inside the crate, once the data key is unwrapped.
    ///
    /// # Errors
    /// [`Error::IntegrityError`] for anything but a well-formed record of this format.
    pub fn decode(bytes: &[u8]) -> Result<UnverifiedRecord> {
        decode_inner(bytes).ok_or(Error::IntegrityError)
    }
}

fn decode_inner(bytes: &[u8]) -> Option<UnverifiedRecord> {
    let (signed, checksum) = bytes.split_at_checked(bytes.len().checked_sub(CHECKSUM_LEN)?)?;
    if record_checksum(signed) != checksum {
        return None;
    }
    let (body, tag) = signed.split_at_checked(signed.len().checked_sub(RECORD_TAG_LEN)?)?;
    let mut r = Reader(body);
    if r.take(3)? != MAGIC || r.u8()? != RECORD_FORMAT {
        return None;
    }
    let state = SessionState::from_byte(r.u8()?)?;
    let tenant = Tenant::new(r.str8()?).ok()?;
    let created_at = r.i64()?;
    let expires_at = r.i64()?;
    let submitted_at = match r.i64()? {
        -1 => None,
        t if t >= 0 => Some(t),
        _ => return None,
    };
    let [pin_length, max_attempts, attempts_used] = [r.u8()?, r.u8()?, r.u8()?];
    let mut fields = Vec::new();
    for _ in 0..r.u8()? {
        let name = r.str8()?;
        let kind = FieldKind::from_byte(r.u8()?)?;
        let required = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        fields.push(FieldSpec::new(name, kind, required).ok()?);
    }
    let form = FormSpec::new(fields).ok()?;
    let mut entries = Vec::new();
    for _ in 0..r.u8()? {
        let k = r.str8()?;
        let v = std::str::from_utf8(r.bytes16()?).ok()?;
        entries.push((k, v));
    }
    let metadata = Metadata::new(entries).ok()?;
    let key_id = KeyId::new(r.str8()?).ok()?;
    let ciphertext = r.bytes16()?.to_vec();
    let pin_verifier = match r.u8()? {
        0 => None,
        1 => Some(r.take(MAC_LEN)?.try_into().ok()?),
        _ => return None,
    };
    let card = match r.u8()? {
        0 => None,
        1 => {
            let brand = Brand::from_byte(r.u8()?)?;
            let masked_number = r.str8()?;
            if !CardSummary::is_masked_shape(masked_number) {
                return None;
            }
            Some(CardSummary {
                brand,
                masked_number: masked_number.to_owned(),
            })
        }
        _ => return None,
    };
    let mut sealed_fields = Vec::new();
    for _ in 0..r.u8()? {
        let name = field_name(r.str8()?);
        let sealed = r.bytes16()?.to_vec();
        form.field(&name)?;
        if sealed_fields.iter().any(|(n, _)| *n == name) {
            return None;
        }
        sealed_fields.push((name, sealed));
    }
    if !r.0.is_empty() {
        return None;
    }

    let options = SessionOptions {
        pin_length,
        max_attempts,
        ..SessionOptions::default()
    };
    let consistent = options.validate().is_ok()
        && attempts_used <= max_attempts
        && created_at >= 0
        && expires_at > created_at
        && ciphertext.len() <= WrappedKey::MAX_CIPHERTEXT_LEN
        && match state {
            SessionState::Pending => {
                submitted_at.is_none()
                    && pin_verifier.is_none()
                    && card.is_none()
                    && sealed_fields.is_empty()
            }
            SessionState::Submitted => submitted_at.is_some() && pin_verifier.is_some(),
            _ => pin_verifier.is_none() && card.is_none() && sealed_fields.is_empty(),
        };
    if !consistent {
        return None;
    }
    Some(UnverifiedRecord {
        record: SealedRecord {
            state,
            tenant,
            created_at,
            expires_at,
            submitted_at,
            pin_length,
            max_attempts,
            attempts_used,
            form,
            metadata,
            wrapped_dek: WrappedKey { key_id, ciphertext },
            pin_verifier,
            card,
            sealed_fields,
        },
        body: body.to_vec(),
        tag: tag.try_into().ok()?,
    })
}

/// Every count and length written is bounded by validation (at most 32 fields, 16 metadata
/// entries, names of 64 bytes, values of 1 KiB plus AEAD overhead), far within u8/u16.
fn put_count(out: &mut Vec<u8>, n: usize) {
    out.push(u8::try_from(n).unwrap_or(u8::MAX));
}

fn put_str8(out: &mut Vec<u8>, s: &str) {
    put_count(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_bytes16(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u16::try_from(b.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(*self.take(1)?.first()?)
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str8(&mut self) -> Option<&'a str> {
        let n = usize::from(self.u8()?);
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn bytes16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?));
        self.take(n)
    }
}
