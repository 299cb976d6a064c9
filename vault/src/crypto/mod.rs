//! The envelope: sealing and opening with a context bound in.
//!
//! Every call names what it protects (format version, tenant, session, field) and that
//! context is bound as associated data or MAC input, so a ciphertext or tag moved to another
//! session, tenant or field fails to open. Raw primitives live in the private `hazmat`
//! module and nowhere else.

mod hazmat;

use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::DataKey;
use crate::session::SessionId;
use crate::tenant::Tenant;

pub(crate) use hazmat::{MAC_LEN, fill_random};

/// Bytes of a record tag: a 12-byte nonce and a 16-byte AES-GCM tag.
pub(crate) const RECORD_TAG_LEN: usize = hazmat::NONCE_LEN + hazmat::TAG_LEN;

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
const HKDF_PIN: &[u8] = b"pci-vault/v1/hkdf/pin-verifier";

/// Appends `bytes` with a big-endian u16 length prefix, so concatenated parts cannot be
/// re-split into different parts with the same bytes.
/// Associated data, built on the stack: a label and length-prefixed parts, so concatenated
/// parts cannot be re-split into different parts with the same bytes. Every part is bounded
/// by validation (tenant, key id and field names are at most 64 bytes, session ids 32), so
/// the largest associated data (a key wrap) is about 210 bytes.
#[derive(Clone)]
pub(crate) struct Aad {
    buf: [u8; 256],
    len: usize,
}

impl Aad {
    fn new(label: &[u8]) -> Self {
        let mut aad = Aad {
            buf: [0; 256],
            len: 0,
        };
        aad.push(label);
        aad
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(slot) = self.buf.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
        } else {
            // Unreachable with validated inputs; a truncated context would be a silent
            // change of meaning, so mark the data as unusable instead.
            debug_assert!(false, "associated data over 256 bytes");
            self.len = self.buf.len();
        }
    }

    fn push_prefixed(&mut self, bytes: &[u8]) {
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        self.push(&len.to_be_bytes());
        self.push(bytes);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// The associated data the key provider binds to a session's wrapped data key.
pub(crate) fn dek_wrap_aad(tenant: &Tenant, id: &SessionId) -> Aad {
    let mut aad = Aad::new(LABEL_DEK_WRAP);
    aad.push(&[FORMAT_VERSION]);
    aad.push_prefixed(tenant.as_str().as_bytes());
    aad.push_prefixed(id.as_bytes());
    aad
}

/// The per-session keys of one data key, bound to one tenant and session: AES-256-GCM under
/// the data key for the fields and the record tag, and an HMAC-SHA256 key derived from it
/// (HKDF) for the PIN verifier, derived only when a PIN is computed or checked.
pub(crate) struct SessionCrypto {
    dek: DataKey,
    aead: hazmat::Aead,
    pin_key: OnceLock<hazmat::HmacKey>,
    tenant: Tenant,
    id: SessionId,
}

impl SessionCrypto {
    pub(crate) fn new(dek: &DataKey, tenant: &Tenant, id: &SessionId) -> Self {
        SessionCrypto {
            dek: dek.clone(),
            aead: hazmat::Aead::new(dek.expose_secret()),
            pin_key: OnceLock::new(),
            tenant: tenant.clone(),
            id: id.clone(),
        }
    }

    fn pin_key(&self) -> &hazmat::HmacKey {
        self.pin_key.get_or_init(|| {
            let [key] = hazmat::hkdf_expand(self.dek.expose_secret(), [HKDF_PIN]);
            hazmat::HmacKey::new(key.as_slice())
        })
    }

    fn field_aad(&self, field: &str) -> Aad {
        let mut aad = Aad::new(LABEL_FIELD);
        aad.push(&[FORMAT_VERSION]);
        aad.push_prefixed(self.tenant.as_str().as_bytes());
        aad.push_prefixed(self.id.as_bytes());
        aad.push_prefixed(field.as_bytes());
        aad
    }

    /// Seals one field value under this session and field name.
    pub(crate) fn seal_field(&self, field: &str, value: &[u8]) -> Vec<u8> {
        self.aead.seal(self.field_aad(field).as_slice(), value)
    }

    /// Opens one field value; any change to the ciphertext or its context is an
    /// [`Error::IntegrityError`].
    pub(crate) fn open_field(&self, field: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.aead
            .open(self.field_aad(field).as_slice(), sealed)
            .ok_or(Error::IntegrityError)
    }

    /// The associated data of the record tag: a label, the format version, the session id
    /// and the whole encoded body.
    fn record_aad(&self, body: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(LABEL_RECORD.len() + 1 + 32 + body.len());
        aad.extend_from_slice(LABEL_RECORD);
        aad.push(FORMAT_VERSION);
        aad.extend_from_slice(self.id.as_bytes());
        aad.extend_from_slice(body);
        aad
    }

    /// The tag that authenticates a whole encoded record body: AES-256-GCM under the data key
    /// with an empty plaintext (GMAC), a fresh random nonce, and the body as associated data.
    /// Output: `nonce || tag`.
    pub(crate) fn record_tag(&self, body: &[u8]) -> [u8; RECORD_TAG_LEN] {
        let sealed = self.aead.seal(&self.record_aad(body), &[]);
        let mut tag = [0u8; RECORD_TAG_LEN];
        if let Some(src) = sealed.get(..RECORD_TAG_LEN) {
            tag.copy_from_slice(src);
        }
        tag
    }

    /// Checks a record tag (in constant time, inside AES-GCM).
    pub(crate) fn verify_record_tag(&self, body: &[u8], tag: &[u8]) -> bool {
        self.aead
            .open(&self.record_aad(body), tag)
            .is_some_and(|plain| plain.is_empty())
    }

    /// The PIN verifier stored in place of the PIN.
    pub(crate) fn pin_verifier(&self, pin: &[u8]) -> [u8; MAC_LEN] {
        self.pin_key()
            .tag(&[LABEL_PIN, &[FORMAT_VERSION], self.id.as_bytes(), pin])
    }

    /// Checks a PIN against its verifier in constant time.
    pub(crate) fn verify_pin(&self, pin: &[u8], verifier: &[u8]) -> bool {
        self.pin_key().verify(
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
        self.0
            .seal(kek_wrap_aad(key_id, aad).as_slice(), dek.expose_secret())
    }

    /// Unwraps a data key; a wrong key, key id or associated data is an
    /// [`Error::IntegrityError`].
    pub(crate) fn unwrap(&self, key_id: &str, aad: &[u8], wrapped: &[u8]) -> Result<DataKey> {
        let plain = self
            .0
            .open(kek_wrap_aad(key_id, aad).as_slice(), wrapped)
            .ok_or(Error::IntegrityError)?;
        DataKey::from_slice(&plain).map_err(|_| Error::IntegrityError)
    }
}

fn kek_wrap_aad(key_id: &str, aad: &[u8]) -> Aad {
    let mut out = Aad::new(LABEL_KEK_WRAP);
    out.push_prefixed(key_id.as_bytes());
    out.push(aad);
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
