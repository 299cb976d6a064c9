//! The envelope: sealing and opening with a context bound in.
//!
//! Every call names what it protects (format version, tenant, session, field) and that
//! context is bound as associated data or MAC input, so a ciphertext or tag moved to another
//! session, tenant or field fails to open. Raw primitives live in the private `hazmat`
//! module and nowhere else.

mod hazmat;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::DataKey;
use crate::session::SessionId;
use crate::tenant::Tenant;

pub(crate) use hazmat::{MAC_LEN, fill_random};

/// The version of the sealed-record format and of every context label below.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Domain labels: each use of a key gets its own, so no output of one use is valid in another.
const LABEL_FIELD: &[u8] = b"pci-vault/v1/field";
const LABEL_DEK_WRAP: &[u8] = b"pci-vault/v1/dek";
const LABEL_KEK_WRAP: &[u8] = b"pci-vault/v1/kek-wrap";
const LABEL_RECORD: &[u8] = b"pci-vault/v1/record";
const LABEL_PIN: &[u8] = b"pci-vault/v1/pin";
const LABEL_AUDIT: &[u8] = b"pci-vault/v1/audit";
const LABEL_STORE_KEY: &[u8] = b"pci-vault/v1/store-key";
const HKDF_RECORD: &[u8] = b"pci-vault/v1/hkdf/record-mac";
const HKDF_PIN: &[u8] = b"pci-vault/v1/hkdf/pin-verifier";

/// Appends `bytes` with a big-endian u16 length prefix, so concatenated parts cannot be
/// re-split into different parts with the same bytes.
/// Every part is bounded far below 64 KiB by validation (tenant, key id and field names are
/// at most 64 bytes, session ids 32).
fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(bytes.len() <= usize::from(u16::MAX));
    #[allow(clippy::cast_possible_truncation)]
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The associated data the key provider binds to a session's wrapped data key.
pub(crate) fn dek_wrap_aad(tenant: &Tenant, id: &SessionId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(96);
    aad.extend_from_slice(LABEL_DEK_WRAP);
    aad.push(FORMAT_VERSION);
    push_prefixed(&mut aad, tenant.as_str().as_bytes());
    push_prefixed(&mut aad, id.as_bytes());
    aad
}

/// The per-session keys derived from one data key, bound to one tenant and session.
pub(crate) struct SessionCrypto {
    fields: hazmat::Aead,
    record_key: hazmat::HmacKey,
    pin_key: hazmat::HmacKey,
    tenant: Tenant,
    id: SessionId,
}

impl SessionCrypto {
    pub(crate) fn new(dek: &DataKey, tenant: &Tenant, id: &SessionId) -> Self {
        let [record_key, pin_key] =
            hazmat::hkdf_expand(dek.expose_secret(), [HKDF_RECORD, HKDF_PIN]);
        SessionCrypto {
            fields: hazmat::Aead::new(dek.expose_secret()),
            record_key: hazmat::HmacKey::new(record_key.as_slice()),
            pin_key: hazmat::HmacKey::new(pin_key.as_slice()),
            tenant: tenant.clone(),
            id: id.clone(),
        }
    }

    fn field_aad(&self, field: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(128);
        aad.extend_from_slice(LABEL_FIELD);
        aad.push(FORMAT_VERSION);
        push_prefixed(&mut aad, self.tenant.as_str().as_bytes());
        push_prefixed(&mut aad, self.id.as_bytes());
        push_prefixed(&mut aad, field.as_bytes());
        aad
    }

    /// Seals one field value under this session and field name.
    pub(crate) fn seal_field(&self, field: &str, value: &[u8]) -> Vec<u8> {
        self.fields.seal(&self.field_aad(field), value)
    }

    /// Opens one field value; any change to the ciphertext or its context is an
    /// [`Error::IntegrityError`].
    pub(crate) fn open_field(&self, field: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.fields
            .open(&self.field_aad(field), sealed)
            .ok_or(Error::IntegrityError)
    }

    /// The tag that authenticates a whole encoded record body.
    pub(crate) fn record_tag(&self, body: &[u8]) -> [u8; MAC_LEN] {
        self.record_key
            .tag(&[LABEL_RECORD, &[FORMAT_VERSION], self.id.as_bytes(), body])
    }

    /// Checks a record tag in constant time.
    pub(crate) fn verify_record_tag(&self, body: &[u8], tag: &[u8]) -> bool {
        self.record_key.verify(
            &[LABEL_RECORD, &[FORMAT_VERSION], self.id.as_bytes(), body],
            tag,
        )
    }

    /// The PIN verifier stored in place of the PIN.
    pub(crate) fn pin_verifier(&self, pin: &[u8]) -> [u8; MAC_LEN] {
        self.pin_key
            .tag(&[LABEL_PIN, &[FORMAT_VERSION], self.id.as_bytes(), pin])
    }

    /// Checks a PIN against its verifier in constant time.
    pub(crate) fn verify_pin(&self, pin: &[u8], verifier: &[u8]) -> bool {
        self.pin_key.verify(
            &[LABEL_PIN, &[FORMAT_VERSION], self.id.as_bytes(), pin],
            verifier,
        )
    }
}

/// A key-encryption key's AES-256-GCM key schedule, computed once per key rather than on
/// every wrap and unwrap. Zeroized on drop.
#[derive(Clone)]
pub(crate) struct KekCipher(hazmat::Aead);

impl KekCipher {
    pub(crate) fn new(kek: &[u8; 32]) -> Self {
        KekCipher(hazmat::Aead::new(kek))
    }

    /// Wraps a data key, binding the key id and the caller's associated data.
    pub(crate) fn wrap(&self, key_id: &str, aad: &[u8], dek: &DataKey) -> Vec<u8> {
        self.0.seal(&kek_wrap_aad(key_id, aad), dek.expose_secret())
    }

    /// Unwraps a data key; a wrong key, key id or associated data is an
    /// [`Error::IntegrityError`].
    pub(crate) fn unwrap(&self, key_id: &str, aad: &[u8], wrapped: &[u8]) -> Result<DataKey> {
        let plain = self
            .0
            .open(&kek_wrap_aad(key_id, aad), wrapped)
            .ok_or(Error::IntegrityError)?;
        DataKey::from_slice(&plain).map_err(|_| Error::IntegrityError)
    }
}

fn kek_wrap_aad(key_id: &str, aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LABEL_KEK_WRAP.len() + key_id.len() + aad.len() + 4);
    out.extend_from_slice(LABEL_KEK_WRAP);
    push_prefixed(&mut out, key_id.as_bytes());
    out.extend_from_slice(aad);
    out
}

/// The key of the session references in audit events.
pub(crate) struct AuditKey(hazmat::HmacKey);

impl AuditKey {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        AuditKey(hazmat::HmacKey::new(key))
    }

    /// The reference audit events carry instead of the session id: a keyed hash, so the log
    /// cannot be used to open the customer's link, yet an operator with the audit key can
    /// match an id to its events. 16 bytes, lowercase hex.
    pub(crate) fn session_ref(&self, id: &SessionId) -> String {
        let tag = self.0.tag(&[LABEL_AUDIT, id.as_bytes()]);
        let mut out = String::with_capacity(32);
        for b in tag.iter().take(16) {
            for nibble in [b >> 4, b & 0x0f] {
                out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
            }
        }
        out
    }
}

/// The key a session's record is stored under: a hash of the id, so someone who can list
/// the store cannot recover the links and submit to them.
pub(crate) fn store_key(id: &SessionId) -> [u8; 32] {
    hazmat::sha256(&[LABEL_STORE_KEY, id.as_bytes()])
}

/// An unkeyed checksum (CRC-32) of an encoded record, checked before anything else is read,
/// so a corrupted byte anywhere (key id included) reads as [`Error::IntegrityError`] rather
/// than as some other failure. Authentication is the record tag's job, not this one's.
pub(crate) fn record_checksum(bytes: &[u8]) -> [u8; 4] {
    hazmat::crc32(bytes)
}
