//! The envelope: sealing and opening with a context bound in.
//!
//! Every call names what it protects (format version, tenant, session, field) and that
//! context is bound as associated data or MAC input, so a ciphertext or tag moved to another
//! session, tenant or field fails to open. Raw primitives live in the private `hazmat`
//! module and nowhere else.
//!
//! This is the bottom layer of the crate: it owns the random source and the data key, takes
//! its context as bytes (a tenant name, a session's 32 id bytes, a field name) and imports
//! nothing but the error type, so every other module may use it and it uses none of them.

mod data_key;
mod hazmat;

use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub use data_key::DataKey;
pub(crate) use hazmat::{MAC_LEN, fill_random};

/// Bytes of a session id as the crypto layer takes it. Fixed, so the parts that follow it
/// in a record tag's associated data and in the PIN verifier's input cannot be re-split.
pub(crate) const SESSION_ID_LEN: usize = 32;

/// Bytes of a record tag: a 12-byte nonce and a 16-byte AES-GCM tag.
pub(crate) const RECORD_TAG_LEN: usize = hazmat::NONCE_LEN + hazmat::TAG_LEN;

/// The version of the sealed-record format and of every context label below.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Domain labels: each use of a key gets its own, so no output of one use is valid in another.
const LABEL_FIELD: &[u8] = b"pci-vault/v1/field";
const LABEL_DEK_WRAP: &[u8] = b"pci-vault/v1/dek";
const LABEL_KEK_WRAP: &[u8] = b"pci-vault/v1/kek-wrap";
const LABEL_RECORD: &[u8] = b"pci-vault/v1/record";
const LABEL_EVENT: &[u8] = b"pci-vault/v1/event";
const LABEL_PIN: &[u8] = b"pci-vault/v1/pin";
const LABEL_AUDIT: &[u8] = b"pci-vault/v1/audit";
const LABEL_STORE_KEY: &[u8] = b"pci-vault/v1/store-key";
const HKDF_PIN: &[u8] = b"pci-vault/v1/hkdf/pin-verifier";

/// Bytes of associated data held on the stack. Every context the vault itself builds fits
/// (the largest, a key wrap with a 64-byte key id, is about 210 bytes); longer associated
/// data, such as a [`KekCipher`] caller's, moves to the heap and is bound in full.
pub(crate) const AAD_INLINE_LEN: usize = 256;

/// Associated data: a label and parts, built on the stack up to [`AAD_INLINE_LEN`] bytes and
/// on the heap past it. Whatever its length, every byte pushed is bound: nothing is ever
/// truncated or dropped.
#[derive(Clone)]
pub(crate) struct Aad {
    inline: [u8; AAD_INLINE_LEN],
    len: usize,
    /// The whole associated data once it outgrows `inline`; `None` until then.
    spilled: Option<Vec<u8>>,
}

impl Aad {
    fn new(label: &[u8]) -> Self {
        let mut aad = Aad {
            inline: [0; AAD_INLINE_LEN],
            len: 0,
            spilled: None,
        };
        aad.push(label);
        aad
    }

    fn push(&mut self, bytes: &[u8]) {
        if let Some(heap) = &mut self.spilled {
            heap.extend_from_slice(bytes);
            return;
        }
        let end = self.len + bytes.len();
        if let Some(slot) = self.inline.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
        } else {
            let mut heap = Vec::with_capacity(end);
            heap.extend_from_slice(self.as_slice());
            heap.extend_from_slice(bytes);
            self.spilled = Some(heap);
        }
    }

    /// Appends `bytes` after its length, so concatenated parts cannot be re-split into
    /// different parts with the same bytes. A length below `0xFFFF` is two big-endian bytes;
    /// a longer one is `0xFFFF` followed by eight big-endian bytes, so the encoding stays
    /// unambiguous for parts of any length.
    fn push_prefixed(&mut self, bytes: &[u8]) {
        match u16::try_from(bytes.len()) {
            Ok(len) if len < u16::MAX => self.push(&len.to_be_bytes()),
            _ => {
                self.push(&u16::MAX.to_be_bytes());
                self.push(&(bytes.len() as u64).to_be_bytes());
            }
        }
        self.push(bytes);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.spilled {
            Some(heap) => heap,
            None => self.inline.get(..self.len).unwrap_or_default(),
        }
    }
}

/// The associated data the key provider binds to a session's wrapped data key.
pub(crate) fn dek_wrap_aad(
    tenant: &(impl AsRef<str> + ?Sized),
    session_id: &impl AsRef<[u8; SESSION_ID_LEN]>,
) -> Aad {
    let mut aad = Aad::new(LABEL_DEK_WRAP);
    aad.push(&[FORMAT_VERSION]);
    aad.push_prefixed(tenant.as_ref().as_bytes());
    aad.push_prefixed(session_id.as_ref());
    aad
}

/// The per-session keys of one data key, bound to one tenant and session: AES-256-GCM under
/// the data key for the fields and the record tag, and an HMAC-SHA256 key derived from it
/// (HKDF) for the PIN verifier, derived only when a PIN is computed or checked.
pub(crate) struct SessionCrypto {
    dek: DataKey,
    aead: hazmat::Aead,
    pin_key: OnceLock<hazmat::HmacKey>,
    /// The field associated data up to the field name: label, version, tenant, session id.
    field_context: Aad,
    session_id: [u8; SESSION_ID_LEN],
}

impl SessionCrypto {
    /// Takes the session's data key, its tenant's name and its id bytes.
    pub(crate) fn new(
        dek: &DataKey,
        tenant: &(impl AsRef<str> + ?Sized),
        session_id: &impl AsRef<[u8; SESSION_ID_LEN]>,
    ) -> Self {
        let session_id = *session_id.as_ref();
        let mut field_context = Aad::new(LABEL_FIELD);
        field_context.push(&[FORMAT_VERSION]);
        field_context.push_prefixed(tenant.as_ref().as_bytes());
        field_context.push_prefixed(&session_id);
        SessionCrypto {
            dek: dek.clone(),
            aead: hazmat::Aead::new(dek.expose_secret()),
            pin_key: OnceLock::new(),
            field_context,
            session_id,
        }
    }

    fn pin_key(&self) -> &hazmat::HmacKey {
        self.pin_key.get_or_init(|| {
            let [key] = hazmat::hkdf_expand(self.dek.expose_secret(), [HKDF_PIN]);
            hazmat::HmacKey::new(key.as_slice())
        })
    }

    fn field_aad(&self, field: &str) -> Aad {
        let mut aad = self.field_context.clone();
        aad.push_prefixed(field.as_bytes());
        aad
    }

    /// The data key these keys come from.
    pub(crate) fn data_key(&self) -> &DataKey {
        &self.dek
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

    /// The associated data of a record or event tag: its label, the format version, the
    /// session id and the whole encoded body.
    fn tag_aad(&self, label: &[u8], body: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(label.len() + 1 + SESSION_ID_LEN + body.len());
        aad.extend_from_slice(label);
        aad.push(FORMAT_VERSION);
        aad.extend_from_slice(&self.session_id);
        aad.extend_from_slice(body);
        aad
    }

    /// AES-256-GCM under the data key with an empty plaintext (GMAC), a fresh random
    /// nonce, and `label`, the session and `body` as associated data: `nonce || tag`.
    fn gmac(&self, label: &[u8], body: &[u8]) -> [u8; RECORD_TAG_LEN] {
        let sealed = self.aead.seal(&self.tag_aad(label, body), &[]);
        let mut tag = [0u8; RECORD_TAG_LEN];
        if let Some(src) = sealed.get(..RECORD_TAG_LEN) {
            tag.copy_from_slice(src);
        }
        tag
    }

    fn verify_gmac(&self, label: &[u8], body: &[u8], tag: &[u8]) -> bool {
        self.aead
            .open(&self.tag_aad(label, body), tag)
            .is_some_and(|plain| plain.is_empty())
    }

    /// The tag that authenticates a whole encoded record body (see [`Self::gmac`]).
    pub(crate) fn record_tag(&self, body: &[u8]) -> [u8; RECORD_TAG_LEN] {
        self.gmac(LABEL_RECORD, body)
    }

    /// Checks a record tag (in constant time, inside AES-GCM).
    pub(crate) fn verify_record_tag(&self, body: &[u8], tag: &[u8]) -> bool {
        self.verify_gmac(LABEL_RECORD, body, tag)
    }

    /// The tag that authenticates a session event published through the store, under its
    /// own label, so a record tag is never a valid event tag or the reverse.
    pub(crate) fn event_tag(&self, body: &[u8]) -> [u8; RECORD_TAG_LEN] {
        self.gmac(LABEL_EVENT, body)
    }

    /// Checks an event tag.
    pub(crate) fn verify_event_tag(&self, body: &[u8], tag: &[u8]) -> bool {
        self.verify_gmac(LABEL_EVENT, body, tag)
    }

    /// The PIN verifier stored in place of the PIN.
    pub(crate) fn pin_verifier(&self, pin: &[u8]) -> [u8; MAC_LEN] {
        self.pin_key()
            .tag(&[LABEL_PIN, &[FORMAT_VERSION], &self.session_id, pin])
    }

    /// Checks a PIN against its verifier in constant time.
    pub(crate) fn verify_pin(&self, pin: &[u8], verifier: &[u8]) -> bool {
        self.pin_key().verify(
            &[LABEL_PIN, &[FORMAT_VERSION], &self.session_id, pin],
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
    pub(crate) fn session_ref(&self, session_id: &impl AsRef<[u8; SESSION_ID_LEN]>) -> String {
        let tag = self.0.tag(&[LABEL_AUDIT, session_id.as_ref()]);
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
pub(crate) fn store_key(session_id: &impl AsRef<[u8; SESSION_ID_LEN]>) -> [u8; 32] {
    hazmat::sha256(&[LABEL_STORE_KEY, session_id.as_ref()])
}

/// An unkeyed checksum (CRC-32) of an encoded record, checked before anything else is read,
/// so a corrupted byte anywhere (key id included) reads as [`Error::IntegrityError`] rather
/// than as some other failure. Authentication is the record tag's job, not this one's.
pub(crate) fn record_checksum(bytes: &[u8]) -> [u8; 4] {
    hazmat::crc32(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session id as the crypto layer sees it: 32 bytes.
    struct Id([u8; SESSION_ID_LEN]);

    impl AsRef<[u8; SESSION_ID_LEN]> for Id {
        fn as_ref(&self) -> &[u8; SESSION_ID_LEN] {
            &self.0
        }
    }

    /// Lengths at and around every internal buffer size: the inline associated data, the
    /// two-byte length prefix, the random pool and its per-request limit.
    fn lengths() -> impl Iterator<Item = usize> {
        (0..=2 * AAD_INLINE_LEN + 2).chain([
            1023,
            1024,
            1025,
            4095,
            4096,
            4097,
            usize::from(u16::MAX) - 1,
            usize::from(u16::MAX),
            usize::from(u16::MAX) + 1,
            1 << 20,
        ])
    }

    /// `bytes` with its last byte changed.
    fn last_byte_changed(bytes: &[u8]) -> Vec<u8> {
        let mut other = bytes.to_vec();
        if let Some(last) = other.last_mut() {
            *last ^= 0x01;
        }
        other
    }

    #[test]
    fn aad_holds_every_byte_pushed_at_any_length() {
        for n in lengths() {
            let part: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let mut aad = Aad::new(b"label");
            aad.push(&part);
            aad.push(b"tail");
            assert_eq!(
                aad.as_slice(),
                [&b"label"[..], &part, b"tail"].concat(),
                "{n}"
            );
        }
    }

    #[test]
    fn length_prefix_is_unambiguous_at_any_length() {
        let prefixed = |n: usize| {
            let mut aad = Aad::new(b"");
            aad.push_prefixed(&vec![7u8; n]);
            aad.as_slice().to_vec()
        };
        for n in lengths() {
            let bytes = prefixed(n);
            let (len, header) = match bytes[..2] {
                [0xFF, 0xFF] => (
                    u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                [a, b] => (usize::from(u16::from_be_bytes([a, b])), 2),
                _ => unreachable!(),
            };
            assert_eq!((len, bytes.len()), (n, header + n), "{n}");
        }
        // Below the escape the encoding is the two-byte one records were written with.
        assert_eq!(prefixed(3)[..2], [0, 3]);
        assert_eq!(prefixed(0xFFFE)[..2], [0xFF, 0xFE]);
    }

    #[test]
    fn key_wrap_binds_associated_data_of_any_length() {
        let kek = KekCipher::new(&[9u8; 32]);
        let dek = DataKey::generate();
        for n in lengths() {
            let aad: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
            let wrapped = kek.wrap("k1", &aad, &dek);
            assert_eq!(
                kek.unwrap("k1", &aad, &wrapped).unwrap().expose_secret(),
                dek.expose_secret(),
                "{n}"
            );
            let other = if n == 0 {
                vec![0]
            } else {
                last_byte_changed(&aad)
            };
            assert!(kek.unwrap("k1", &other, &wrapped).is_err(), "{n}");
            assert!(kek.unwrap("k2", &aad, &wrapped).is_err(), "{n}");
        }
    }

    #[test]
    fn fields_bind_names_of_any_length() {
        let crypto = SessionCrypto::new(&DataKey::generate(), "default", &Id([3; SESSION_ID_LEN]));
        for n in lengths().take_while(|&n| n <= 4097) {
            let name = "f".repeat(n);
            let sealed = crypto.seal_field(&name, b"4242");
            assert_eq!(
                crypto.open_field(&name, &sealed).unwrap().as_slice(),
                b"4242",
                "{n}"
            );
            let other = if n == 0 {
                String::from("f")
            } else {
                format!("{}g", &name[1..])
            };
            assert!(crypto.open_field(&other, &sealed).is_err(), "{n}");
        }
    }

    #[test]
    fn record_tag_binds_bodies_of_any_length() {
        let crypto = SessionCrypto::new(&DataKey::generate(), "default", &Id([3; SESSION_ID_LEN]));
        for n in lengths().take_while(|&n| n <= 4097) {
            let body: Vec<u8> = (0..n).map(|i| (i % 241) as u8).collect();
            let tag = crypto.record_tag(&body);
            assert!(crypto.verify_record_tag(&body, &tag), "{n}");
            let other = if n == 0 {
                vec![0]
            } else {
                last_byte_changed(&body)
            };
            assert!(!crypto.verify_record_tag(&other, &tag), "{n}");
        }
    }

    #[test]
    fn fields_and_key_wraps_bind_tenants_of_any_length() {
        let dek = DataKey::generate();
        let id = Id([5; SESSION_ID_LEN]);
        for n in lengths().take_while(|&n| n <= 4097) {
            let tenant = "t".repeat(n);
            let other = if n == 0 {
                String::from("t")
            } else {
                format!("{}u", &tenant[1..])
            };
            let sealed = SessionCrypto::new(&dek, tenant.as_str(), &id).seal_field("pan", b"4242");
            let moved = SessionCrypto::new(&dek, other.as_str(), &id);
            assert!(moved.open_field("pan", &sealed).is_err(), "{n}");
            assert_ne!(
                dek_wrap_aad(tenant.as_str(), &id).as_slice(),
                dek_wrap_aad(other.as_str(), &id).as_slice(),
                "{n}"
            );
        }
    }
}
