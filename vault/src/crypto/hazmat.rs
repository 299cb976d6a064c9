//! Raw primitives: the only place in the crate that calls AES-GCM, HMAC, HKDF and the OS
//! random source directly. Everything outside `crypto` goes through the envelope API in
//! `crypto/mod.rs`, which binds a context into every call.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Bytes of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of an HMAC-SHA256 output.
pub(crate) const MAC_LEN: usize = 32;

/// Fills `out` from the operating system's CSPRNG.
///
/// A machine whose random source fails cannot generate keys, ids or PINs; there is no
/// safe fallback, so this aborts the operation with a panic message that names only the
/// failure.
#[allow(clippy::expect_used)]
pub(crate) fn fill_random(out: &mut [u8]) {
    getrandom::fill(out).expect("the operating system random source failed");
}

/// An AES-256-GCM key schedule. Zeroized on drop by `aes-gcm`'s `zeroize` feature.
pub(crate) struct Aead(Aes256Gcm);

impl Aead {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Aead(Aes256Gcm::new(key.into()))
    }

    /// Encrypts `plaintext` with a fresh random nonce. Output: `nonce || ciphertext || tag`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (_, body) = out.split_at_mut(NONCE_LEN);
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(nonce), aad, body.into())
            // Only plaintexts over 64 GiB fail; every caller bounds its input far below.
            .unwrap_or_else(|_| unreachable!("AES-GCM plaintext length is bounded"));
        out.extend_from_slice(tag.as_slice());
        out
    }

    /// Decrypts `nonce || ciphertext || tag`. `None` when the input is too short or fails
    /// authentication; the caller decides what that means.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let tag: [u8; TAG_LEN] = tag.try_into().ok()?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        self.0
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                aad,
                buf.as_mut_slice().into(),
                &tag.into(),
            )
            .ok()?;
        Some(buf)
    }
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut mac = new_hmac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Checks an HMAC-SHA256 tag over `parts` in constant time.
pub(crate) fn hmac_sha256_verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut mac = new_hmac(key);
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(tag).is_ok()
}

#[allow(clippy::expect_used)]
fn new_hmac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// HKDF-SHA256 (RFC 5869) with an empty salt, expanding `ikm` into one 32-byte key per
/// `info` label.
pub(crate) fn hkdf_sha256<const N: usize>(
    ikm: &[u8],
    infos: [&[u8]; N],
) -> [Zeroizing<[u8; 32]>; N] {
    let hk = hkdf::Hkdf::<Sha256>::new(None, ikm);
    infos.map(|info| {
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(info, okm.as_mut_slice())
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
            .unwrap_or_else(|_| unreachable!("HKDF output length is valid"));
        okm
    })
}

/// SHA-256 of the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let aead = Aead::new(&[7u8; 32]);
        let sealed = aead.seal(b"ctx-a", b"4242424242424242");
        assert_eq!(sealed.len(), NONCE_LEN + 16 + TAG_LEN);
        assert!(!sealed.windows(16).any(|w| w == b"4242424242424242"));
        assert_eq!(
            aead.open(b"ctx-a", &sealed).unwrap().as_slice(),
            b"4242424242424242"
        );
        assert!(aead.open(b"ctx-b", &sealed).is_none());
        assert!(aead.open(b"ctx-a", &sealed[..20]).is_none());
    }

    #[test]
    fn nonces_differ_between_seals() {
        let aead = Aead::new(&[7u8; 32]);
        let a = aead.seal(b"", b"x");
        let b = aead.seal(b"", b"x");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(tag[..8], [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]);
        assert!(hmac_sha256_verify(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &tag
        ));
        assert!(!hmac_sha256_verify(
            b"Jefe",
            &[b"what do ya want for nothing!"],
            &tag
        ));
    }
}
