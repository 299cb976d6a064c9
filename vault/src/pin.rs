//! PINs: generated for the customer, read out to the agent, never stored.

use std::fmt;

use zeroize::Zeroizing;

use crate::crypto::fill_random;
use crate::error::{Error, Result};
use crate::session::SessionOptions;

/// A PIN: 4–12 ASCII digits. Zeroized on drop; `Debug` is redacted and there is no
/// `Display`, so a PIN reaches text only through [`Pin::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// A uniformly random PIN of `len` digits (no modulo bias: random bytes of 250 or more
    /// are drawn again).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `len` is not 4–12.
    pub fn generate(len: u8) -> Result<Self> {
        check_length(usize::from(len))?;
        let mut digits = Zeroizing::new(String::with_capacity(usize::from(len)));
        let mut pool = Zeroizing::new([0u8; 32]);
        while digits.len() < usize::from(len) {
            fill_random(pool.as_mut_slice());
            for &b in pool.iter() {
                if b < 250 && digits.len() < usize::from(len) {
                    digits.push(char::from(b'0' + b % 10));
                }
            }
        }
        Ok(Pin(digits))
    }

    /// Parses a PIN typed by an agent. Surrounding white space is ignored.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless the text is 4–12 ASCII digits. The message never
    /// repeats the input. A well-formed PIN of the wrong length for a session is not an
    /// error here: it counts as a wrong PIN when tried.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        check_length(text.len())?;
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidArgument("a PIN is 4-12 digits 0-9"));
        }
        Ok(Pin(Zeroizing::new(text.to_owned())))
    }

    /// The digits. Show them only to the customer.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

fn check_length(len: usize) -> Result<()> {
    let range =
        usize::from(SessionOptions::MIN_PIN_LENGTH)..=usize::from(SessionOptions::MAX_PIN_LENGTH);
    if range.contains(&len) {
        Ok(())
    } else {
        Err(Error::InvalidArgument("a PIN is 4-12 digits 0-9"))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pins_have_the_asked_length_and_only_digits() {
        for len in 4..=12 {
            let pin = Pin::generate(len).unwrap();
            assert_eq!(pin.expose_secret().len(), usize::from(len));
            assert!(pin.expose_secret().bytes().all(|b| b.is_ascii_digit()));
        }
        assert!(Pin::generate(3).is_err());
        assert!(Pin::generate(13).is_err());
    }

    #[test]
    fn digits_are_roughly_uniform() {
        // 60,000 digits: each digit's count is within 5 standard deviations of 6,000.
        let mut counts = [0u32; 10];
        for _ in 0..5_000 {
            for b in Pin::generate(12).unwrap().expose_secret().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        for (digit, &c) in counts.iter().enumerate() {
            assert!(
                (5_640..=6_360).contains(&c),
                "digit {digit} drawn {c} times"
            );
        }
    }

    #[test]
    fn parse_accepts_digits_only() {
        assert_eq!(Pin::parse(" 123456 ").unwrap().expose_secret(), "123456");
        for bad in [
            "",
            "123",
            "1234567890123",
            "12a456",
            "１２３４５６",
            "١٢٣٤٥٦",
            "12 456",
            "1234\0",
        ] {
            let err = Pin::parse(bad).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::InvalidArgument);
            assert!(!err.to_string().contains(bad.trim()) || bad.trim().is_empty());
        }
    }

    #[test]
    fn debug_is_redacted() {
        let pin = Pin::parse("987654").unwrap();
        assert_eq!(format!("{pin:?}"), "Pin([REDACTED])");
    }
}
