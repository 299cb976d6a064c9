//! The calls made to the token: finding and checking keys, AES-GCM, creating a key.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use pci_vault::{Error, KeyId, Result};
use zeroize::Zeroizing;

use crate::config::Pkcs11Config;
use crate::pool::SessionPool;
use crate::{IV_LEN, TAG_LEN};

/// What a key must allow.
#[derive(Clone, Copy)]
pub(crate) enum Usage {
    /// The primary: encrypts and decrypts.
    Wrap,
    /// A previous key: decrypts.
    Unwrap,
}

/// A PKCS#11 error in a few words: the return value's name and the function.
pub(crate) fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{function:?} returned {rv:?}"),
        CkError::LibraryLoading(e) => format!("the module cannot be loaded ({e})"),
        other => format!("{other:?}"),
    }
}

fn unavailable(token: &str, what: &str, e: &CkError) -> Error {
    Error::key_unavailable(format!("PKCS#11 token {token:?}, {what}: {}", describe(e)))
}

/// Finds the one secret key labelled `id` and checks it: AES, 32 bytes, sensitive, not
/// extractable, allowed to do what `usage` needs.
pub(crate) fn find_key(
    session: &Session,
    token: &str,
    id: &KeyId,
    usage: Usage,
) -> Result<ObjectHandle> {
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(id.as_str().as_bytes().to_vec()),
        ])
        .map_err(|e| unavailable(token, "finding a key", &e))?;
    let handle = match handles.as_slice() {
        [handle] => *handle,
        [] => {
            return Err(Error::key_unavailable(format!(
                "PKCS#11 token {token:?} has no secret key labelled {:?}",
                id.as_str()
            )));
        }
        _ => {
            return Err(Error::key_unavailable(format!(
                "PKCS#11 token {token:?} has {} secret keys labelled {:?}; labels must be unique",
                handles.len(),
                id.as_str()
            )));
        }
    };
    let attributes = session
        .get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .map_err(|e| unavailable(token, "reading a key's attributes", &e))?;
    let (mut aes, mut len, mut sensitive, mut extractable, mut encrypt, mut decrypt) =
        (false, 0, false, true, false, false);
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(t) => aes = t == KeyType::AES,
            Attribute::ValueLen(n) => len = u64::from(n),
            Attribute::Sensitive(b) => sensitive = b,
            Attribute::Extractable(b) => extractable = b,
            Attribute::Encrypt(b) => encrypt = b,
            Attribute::Decrypt(b) => decrypt = b,
            _ => {}
        }
    }
    let refuse = |why: &str| {
        Err(Error::key_unavailable(format!(
            "PKCS#11 key {:?} on token {token:?} {why}",
            id.as_str()
        )))
    };
    if !aes || len != 32 {
        return refuse("is not a 256-bit AES key");
    }
    if !sensitive || extractable {
        return refuse("can leave the token: it must be sensitive and not extractable");
    }
    if !decrypt || (matches!(usage, Usage::Wrap) && !encrypt) {
        return refuse("is not allowed to encrypt and decrypt");
    }
    Ok(handle)
}

/// AES-GCM encryption of `plain` inside the token. Answers the IV the token used with the
/// ciphertext: `iv` is a fresh random one, which most tokens use as given, but a token that
/// makes its own IV (AWS CloudHSM does) writes that one back into the GCM parameters, and
/// only the IV it wrote decrypts.
pub(crate) fn encrypt(
    session: &Session,
    token: &str,
    id: &KeyId,
    key: ObjectHandle,
    mut iv: [u8; IV_LEN],
    aad: &[u8],
    plain: &[u8],
) -> Result<([u8; IV_LEN], Vec<u8>)> {
    let params = gcm(&mut iv, aad)?;
    let sealed = session
        .encrypt(&Mechanism::AesGcm(params), key, plain)
        .map_err(|e| key_error(token, id, "encrypting", &e))?;
    Ok((iv, sealed))
}

/// AES-GCM decryption inside the token; a ciphertext or associated data that does not
/// authenticate is `INTEGRITY_ERROR`.
pub(crate) fn decrypt(
    session: &Session,
    token: &str,
    id: &KeyId,
    key: ObjectHandle,
    mut iv: [u8; IV_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let params = gcm(&mut iv, aad)?;
    match session.decrypt(&Mechanism::AesGcm(params), key, sealed) {
        Ok(plain) => Ok(Zeroizing::new(plain)),
        Err(CkError::Pkcs11(RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange, _)) => {
            Err(Error::IntegrityError)
        }
        // SoftHSM2 answers a tag that does not verify with CKR_GENERAL_ERROR. It counts as
        // an authentication failure only while the session is still sound; otherwise the
        // token is in trouble and the key is unavailable.
        Err(CkError::Pkcs11(RvError::GeneralError, _)) if session.get_session_info().is_ok() => {
            Err(Error::IntegrityError)
        }
        Err(e) => Err(key_error(token, id, "decrypting", &e)),
    }
}

fn gcm<'a>(iv: &'a mut [u8; IV_LEN], aad: &'a [u8]) -> Result<GcmParams<'a>> {
    let tag_bits = u64::try_from(TAG_LEN * 8).unwrap_or(128);
    GcmParams::new(iv, aad, tag_bits.into())
        .map_err(|_| Error::InvalidArgument("the associated data is too long for PKCS#11"))
}

fn key_error(token: &str, id: &KeyId, what: &str, e: &CkError) -> Error {
    match e {
        CkError::Pkcs11(RvError::MechanismInvalid | RvError::MechanismParamInvalid, _) => {
            Error::key_unavailable(format!(
                "PKCS#11 token {token:?} refused CKM_AES_GCM with key {:?} while {what}: {}",
                id.as_str(),
                describe(e)
            ))
        }
        _ => Error::key_unavailable(format!(
            "PKCS#11 token {token:?}, key {:?}, {what}: {}",
            id.as_str(),
            describe(e)
        )),
    }
}

/// Creates a 256-bit AES key labelled `label` inside the token of `config`, as the provider
/// needs it: a token object, private, sensitive, never extractable, allowed to encrypt and
/// decrypt and nothing else. The key's bytes never leave the token.
///
/// For operators without the vendor's tools and for tests; a ceremony with the vendor's
/// tools (under dual control) creates the same key with the same attributes.
///
/// # Errors
/// `KEY_UNAVAILABLE` as for [`crate::Pkcs11Provider::open`], and when a key with this
/// label already exists.
pub fn create_key(config: &Pkcs11Config, label: &KeyId) -> Result<()> {
    let (pool, token) = SessionPool::open(config)?;
    let session = pool.take()?;
    let existing = session
        .session()
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_str().as_bytes().to_vec()),
        ])
        .map_err(|e| unavailable(&token, "finding a key", &e))?;
    if !existing.is_empty() {
        return Err(Error::key_unavailable(format!(
            "PKCS#11 token {token:?} already has a key labelled {:?}",
            label.as_str()
        )));
    }
    let rw = pool.take_rw()?;
    rw.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Label(label.as_str().as_bytes().to_vec()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
        ],
    )
    .map_err(|e| unavailable(&token, "generating a key", &e))?;
    pool.give_back(session, true);
    Ok(())
}
