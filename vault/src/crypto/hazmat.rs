//! Raw primitives: the only place in the crate that calls AES-GCM, HMAC, HKDF and the OS
//! random source directly. Everything outside `crypto` goes through the envelope API in
//! `crypto/mod.rs`, which binds a context into every call.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Bytes of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of an HMAC-SHA256 output.
pub(crate) const MAC_LEN: usize = 32;

/// Bytes drawn from the operating system at a time for small requests.
const POOL_LEN: usize = 4096;

/// Requests above this size bypass the pool and go to the OS directly.
const POOL_MAX_REQUEST: usize = 256;

/// A per-thread buffer of bytes from the OS CSPRNG. Small requests (ids, keys, nonces, PIN
/// digits) are served from it, so a session does not cost a system call per random value;
/// every byte handed out comes straight from the OS and is wiped from the buffer at once.
/// The buffer remembers the process id it was filled in: after a `fork()`, the child finds
/// another id and refills, so parent and child never hand out the same bytes.
struct RandomPool {
    bytes: Zeroizing<[u8; POOL_LEN]>,
    next: usize,
    pid: u32,
}

thread_local! {
    static POOL: std::cell::RefCell<RandomPool> = std::cell::RefCell::new(RandomPool {
        bytes: Zeroizing::new([0u8; POOL_LEN]),
        next: POOL_LEN,
        pid: 0,
    });
}

/// Fills `out` from the operating system's CSPRNG (through the per-thread pool for small
/// requests).
///
/// A machine whose random source fails cannot generate keys, ids or PINs; there is no
/// safe fallback, so this aborts the operation with a panic message that names only the
/// failure.
#[expect(
    clippy::expect_used,
    reason = "a failed OS random source has no safe fallback"
)]
pub(crate) fn fill_random(out: &mut [u8]) {
    if out.len() > POOL_MAX_REQUEST {
        getrandom::fill(out).expect("the operating system random source failed");
        return;
    }
    POOL.with_borrow_mut(|pool| {
        let pid = std::process::id();
        if pool.pid != pid || pool.next + out.len() > POOL_LEN {
            getrandom::fill(pool.bytes.as_mut_slice())
                .expect("the operating system random source failed");
            pool.next = 0;
            pool.pid = pid;
        }
        let range = pool.next..pool.next + out.len();
        pool.next = range.end;
        match pool.bytes.get_mut(range) {
            Some(taken) => {
                out.copy_from_slice(taken);
                taken.zeroize();
            }
            // Unreachable (a request is at most POOL_MAX_REQUEST bytes and the pool was just
            // refilled if it had fewer left); never leave `out` unfilled.
            None => getrandom::fill(out).expect("the operating system random source failed"),
        }
    });
}

/// An AES-256-GCM key schedule. Zeroized on drop by `aes-gcm`'s `zeroize` feature.
#[derive(Clone)]
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

/// An HMAC-SHA256 key, keyed once: each use clones the keyed state instead of hashing the
/// key again. The state zeroizes on drop (`hmac`/`sha2` `zeroize` features).
#[derive(Clone)]
pub(crate) struct HmacKey(Hmac<Sha256>);

impl HmacKey {
    #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    pub(crate) fn new(key: &[u8]) -> Self {
        HmacKey(
            <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .expect("HMAC accepts keys of any length"),
        )
    }

    fn keyed(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        self.keyed(parts).finalize().into_bytes().into()
    }

    /// Checks a tag over `parts` in constant time.
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.keyed(parts).verify_slice(tag).is_ok()
    }
}

/// HKDF-SHA256-Expand (RFC 5869 §2.3) of a uniformly random 32-byte key, one 32-byte output
/// per `info` label. The extract step is skipped as RFC 5869 §3.3 allows: the input is
/// already a uniformly random key (a data key from the OS CSPRNG), not a shared secret.
pub(crate) fn hkdf_expand<const N: usize>(
    prk: &[u8; 32],
    infos: [&[u8]; N],
) -> [Zeroizing<[u8; 32]>; N] {
    // A 32-byte PRK is always valid for HKDF-SHA256 (at least the hash length).
    let hk = hkdf::Hkdf::<Sha256>::from_prk(prk)
        .unwrap_or_else(|_| unreachable!("HKDF-SHA256 accepts a 32-byte PRK"));
    infos.map(|info| {
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(info, okm.as_mut_slice())
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
            .unwrap_or_else(|_| unreachable!("HKDF output length is valid"));
        okm
    })
}

/// CRC-32 of `bytes`: detects accidental corruption (any single flipped byte), not
/// tampering.
pub(crate) fn crc32(bytes: &[u8]) -> [u8; 4] {
    crc32fast::hash(bytes).to_be_bytes()
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
        let key = HmacKey::new(b"Jefe");
        let tag = key.tag(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(tag[..8], [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]);
        assert!(key.verify(&[b"what do ya want for nothing?"], &tag));
        assert!(!key.verify(&[b"what do ya want for nothing!"], &tag));
        // The keyed state is reused, not consumed: a second tag is the same.
        assert_eq!(key.tag(&[b"what do ya want for nothing?"]), tag);
    }

    #[test]
    fn hkdf_expand_matches_rfc5869_case_1_expand_step() {
        // RFC 5869 A.1: the PRK, and the first bytes of the OKM for info f0..f9.
        let prk: [u8; 32] = [
            0x07, 0x77, 0x09, 0x36, 0x2c, 0x2e, 0x32, 0xdf, 0x0d, 0xdc, 0x3f, 0x0d, 0xc4, 0x7b,
            0xba, 0x63, 0x90, 0xb6, 0xc7, 0x3b, 0xb5, 0x0f, 0x9c, 0x31, 0x22, 0xec, 0x84, 0x4a,
            0xd7, 0xc2, 0xb3, 0xe5,
        ];
        let info: &[u8] = &[0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9];
        let [okm, other] = hkdf_expand(&prk, [info, b"other"]);
        assert_eq!(okm[..8], [0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a]);
        assert_ne!(*okm, *other);
    }

    #[test]
    fn random_pool_hands_out_fresh_bytes() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let mut b = [0u8; 16];
            fill_random(&mut b);
            assert!(seen.insert(b), "a 128-bit value repeated");
        }
        let mut big = vec![0u8; 1024];
        fill_random(&mut big);
        assert!(big.iter().any(|&b| b != 0));
    }

    /// Requests at and around the per-request limit and the pool size are filled in full:
    /// two draws of the same length never agree in their last eight bytes.
    #[test]
    fn random_requests_of_every_size_are_filled_to_the_end() {
        let sizes =
            (8..=POOL_MAX_REQUEST + 2).chain([POOL_LEN - 1, POOL_LEN, POOL_LEN + 1, 4 * POOL_LEN]);
        for n in sizes {
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            fill_random(&mut a);
            fill_random(&mut b);
            assert_ne!(a[n - 8..], b[n - 8..], "{n}");
        }
        fill_random(&mut []);
    }

    #[test]
    fn crc_detects_every_single_byte_change() {
        let data: Vec<u8> = (0..=255u8).collect();
        let sum = crc32(&data);
        for i in 0..data.len() {
            let mut changed = data.clone();
            changed[i] ^= 0x5a;
            assert_ne!(crc32(&changed), sum);
        }
    }
}
