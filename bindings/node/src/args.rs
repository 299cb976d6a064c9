//! Reading arguments from JavaScript values without trusting their types.
//!
//! Every reader checks the JavaScript type before it converts, so a wrong type is a
//! `TypeError` that names the argument. napi's own conversion errors are never shown: their
//! messages quote the value, and a card number passed as a number would end up in one.
//! Objects are read through their own enumerable string keys only, so nothing inherited
//! (a polluted `Object.prototype`, an object literal's `__proto__`) is ever taken as input.

use napi::bindgen_prelude::{
    Array, FromNapiValue, JsObjectValue, JsValue, KeyCollectionMode, KeyConversion, KeyFilter,
    Object, Uint8ArraySlice, Unknown,
};
use napi::{JsString, ValueType};
use zeroize::Zeroizing;

use crate::errors::Failure;

/// A reader's result.
pub(crate) type Arg<T> = Result<T, Failure>;

/// Whether `value` is `undefined` or `null`, which every optional argument accepts.
pub(crate) fn is_absent(value: &Unknown<'_>) -> Arg<bool> {
    Ok(matches!(
        value.get_type()?,
        ValueType::Undefined | ValueType::Null
    ))
}

/// A string argument.
pub(crate) fn string(value: Unknown<'_>, name: &str) -> Arg<String> {
    secret_string(value, name).map(|mut text| std::mem::take(&mut *text))
}

/// A secret string argument (a PIN, a field value): wiped from Rust memory when dropped.
/// The JavaScript string it came from cannot be wiped.
///
/// Only well-formed text is taken: N-API would turn a lone surrogate into U+FFFD, silently
/// changing a name or a value, so a string holding U+FFFD after conversion is refused.
pub(crate) fn secret_string(value: Unknown<'_>, name: &str) -> Arg<Zeroizing<String>> {
    if value.get_type()? != ValueType::String {
        return Err(Failure::type_error(name, "a string"));
    }
    bounded(&JsString::from_unknown(value)?, name)?;
    let text = Zeroizing::new(String::from_unknown(value)?);
    if text.contains(char::REPLACEMENT_CHARACTER) {
        return Err(Failure::type_error(
            name,
            "well-formed text (no lone surrogate, no U+FFFD)",
        ));
    }
    Ok(text)
}

/// The longest string or byte argument, in UTF-16 units or bytes: far beyond any value the
/// vault takes (the core then names the field that is too long), and checked before the
/// text is copied out of the JavaScript engine, so a huge string costs no copy.
const MAX_ARGUMENT_LEN: usize = 16 * 1024 * 1024;

/// Refuses a string longer than [`MAX_ARGUMENT_LEN`], from its length alone.
fn bounded(text: &JsString<'_>, name: &str) -> Arg<()> {
    if text.utf16_len()? > MAX_ARGUMENT_LEN {
        return Err(Failure::type_error(name, "at most 16 Mi characters long"));
    }
    Ok(())
}

/// A secret given as a string or as UTF-8 bytes in a `Buffer`/`Uint8Array`, wiped from
/// Rust memory when dropped. Bytes let the caller wipe its own copy with `fill(0)`.
pub(crate) fn secret_text(value: Unknown<'_>, name: &str) -> Arg<Zeroizing<String>> {
    if value.get_type()? == ValueType::String {
        return secret_string(value, name);
    }
    let bytes = bytes(value, name, "a string or a Buffer")?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(Failure::type_error(name, "UTF-8 text")),
    }
}

/// The bytes of a `Buffer` or other `Uint8Array` (no other typed array), copied into memory
/// that is wiped when dropped.
pub(crate) fn bytes(value: Unknown<'_>, name: &str, expected: &str) -> Arg<Zeroizing<Vec<u8>>> {
    if value.get_type()? != ValueType::Object || !value.is_typedarray()? {
        return Err(Failure::type_error(name, expected));
    }
    let slice =
        Uint8ArraySlice::from_unknown(value).map_err(|_| Failure::type_error(name, expected))?;
    if slice.len() > MAX_ARGUMENT_LEN {
        return Err(Failure::type_error(name, "at most 16 MiB long"));
    }
    Ok(Zeroizing::new(slice.to_vec()))
}

/// A boolean argument.
pub(crate) fn boolean(value: Unknown<'_>, name: &str) -> Arg<bool> {
    if value.get_type()? != ValueType::Boolean {
        return Err(Failure::type_error(name, "a boolean"));
    }
    Ok(bool::from_unknown(value)?)
}

/// A whole number, saturated to `0..=2^53-1`: a negative number reads as 0, so the range
/// check that follows (mostly the core's) reports it.
pub(crate) fn whole(value: Unknown<'_>, name: &str) -> Arg<u64> {
    if value.get_type()? != ValueType::Number {
        return Err(Failure::type_error(name, "a number"));
    }
    let number = f64::from_unknown(value)?;
    if !number.is_finite() || number.fract() != 0.0 {
        return Err(Failure::type_error(name, "a whole number"));
    }
    // `as` saturates: negative numbers become 0, huge ones u64::MAX.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "saturating on purpose"
    )]
    let whole = number as u64;
    Ok(whole.min(MAX_SAFE_INTEGER))
}

/// Largest whole number a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A plain object argument (not an array, not a function, not `null`).
pub(crate) fn object<'env>(value: Unknown<'env>, name: &str) -> Arg<Object<'env>> {
    if value.get_type()? != ValueType::Object || value.is_array()? {
        return Err(Failure::type_error(name, "an object"));
    }
    Ok(Object::from_unknown(value)?)
}

/// The elements of an array argument, at most `max` of them (more is `too_many`).
pub(crate) fn array<'env>(
    value: Unknown<'env>,
    name: &str,
    max: usize,
    too_many: &'static str,
) -> Arg<Vec<Unknown<'env>>> {
    if value.get_type()? != ValueType::Object || !value.is_array()? {
        return Err(Failure::type_error(name, "an array"));
    }
    let array = Array::from_unknown(value)?;
    let len = array.len();
    if usize::try_from(len).map_or(true, |len| len > max) {
        return Err(Failure::invalid(too_many));
    }
    (0..len)
        .map(|i| Ok(array.get_element::<Unknown<'env>>(i)?))
        .collect()
}

/// The own enumerable string-keyed properties of `object`, at most `max` of them (more is
/// `too_many`). Inherited and symbol-keyed properties are ignored.
pub(crate) fn entries<'env>(
    object: &Object<'env>,
    max: usize,
    too_many: &'static str,
) -> Arg<Vec<(String, Unknown<'env>)>> {
    own_keys(object, max, too_many)?
        .into_iter()
        .map(|(name, key)| {
            // By the key value itself, so that any key (one with a NUL, say) reads.
            let value = object.get_property_unchecked::<Unknown<'env>, Unknown<'env>>(key)?;
            Ok((name, value))
        })
        .collect()
}

/// The own enumerable string keys of `object`, as text and as JavaScript values; more than
/// `max` own enumerable keys is `too_many`, found before any key is read.
fn own_keys<'env>(
    object: &Object<'env>,
    max: usize,
    too_many: &'static str,
) -> Arg<Vec<(String, Unknown<'env>)>> {
    let names = object.get_all_property_names(
        KeyCollectionMode::OwnOnly,
        KeyFilter::Enumerable,
        KeyConversion::NumbersToStrings,
    )?;
    let names = Array::from_unknown(names.to_unknown())?;
    if usize::try_from(names.len()).map_or(true, |len| len > max) {
        return Err(Failure::invalid(too_many));
    }
    let mut keys = Vec::with_capacity(names.len() as usize);
    for i in 0..names.len() {
        let key = names.get_element::<Unknown<'env>>(i)?;
        // Symbol keys are not input.
        if key.get_type()? == ValueType::String {
            bounded(&JsString::from_unknown(key)?, "a property name")?;
            let name = String::from_unknown(key)?;
            // As for values: a lone surrogate would arrive as U+FFFD, and two names could
            // become one.
            if name.contains(char::REPLACEMENT_CHARACTER) {
                return Err(Failure::Type(
                    "a property name must be well-formed text (no lone surrogate, no U+FFFD)"
                        .to_owned(),
                ));
            }
            keys.push((name, key));
        }
    }
    Ok(keys)
}

/// Option property `key` of `options`, or `None` when it is missing, `undefined` or `null`.
pub(crate) fn property<'env>(options: &Object<'env>, key: &str) -> Arg<Option<Unknown<'env>>> {
    if !options.has_own_property(key)? {
        return Ok(None);
    }
    let value = options.get_named_property_unchecked::<Unknown<'env>>(key)?;
    Ok(if is_absent(&value)? {
        None
    } else {
        Some(value)
    })
}

/// `key` when it is a short identifier, safe to name in an error message: up to 32 ASCII
/// letters, digits and `_`, starting with a letter or `_`, with at most 6 digits. Other keys
/// are caller data that could be huge, or a card number (or a CVC and an expiry) by mistake.
fn printable(key: &str) -> Option<&str> {
    let ok = key.len() <= 32
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && key.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && key.bytes().filter(u8::is_ascii_digit).count() <= 6;
    ok.then_some(key)
}

/// How an error message names property `key` of `container`.
pub(crate) fn property_name(container: &str, key: &str) -> String {
    match printable(key) {
        Some(key) => format!("{container}.{key}"),
        None => format!("each value of {container}"),
    }
}

/// Refuses own properties of `options` other than `allowed`, so a misspelt option is an
/// error rather than silently ignored.
pub(crate) fn only_known(options: &Object<'_>, name: &str, allowed: &[&str]) -> Arg<()> {
    for (key, _) in own_keys(options, 64, "an options object has at most 64 properties")? {
        if !allowed.contains(&key.as_str()) {
            let what = match printable(&key) {
                Some(key) => format!("{name}.{key} is not an option"),
                None => format!("{name} has a property that is not an option"),
            };
            return Err(Failure::Type(format!(
                "{what}; it takes {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}
