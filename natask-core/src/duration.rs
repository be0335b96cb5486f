//! The duration grammar of natask's attributes: a whole number and a unit,
//! `500ms`, `30s`, `5m`, `2h` or `1d`.
//!
//! `#[task(timeout = "..")]`, `#[task(unique = "..")]` and the delays of a
//! backoff policy ([`crate::retry::parse_backoff`]) are written in it and
//! checked at compile time; how long each may be is the attribute's rule,
//! not the grammar's.

use std::fmt;

/// What a duration looks like, for the messages here and in
/// [`crate::retry`].
pub(crate) const HINT: &str =
    "write a whole number followed by `ms`, `s`, `m`, `h` or `d`, e.g. `30s`";

/// A duration [`parse_ms`] refuses; its message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationSyntaxError {
    /// Not a whole number followed by one of the units.
    Malformed {
        /// The text as written.
        text: String,
    },
    /// More milliseconds than a `u64` holds.
    TooLong {
        /// The text as written.
        text: String,
    },
}

impl fmt::Display for DurationSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationSyntaxError::Malformed { text } => {
                write!(f, "`{text}` is not a duration; {HINT}")
            }
            DurationSyntaxError::TooLong { text } => {
                write!(f, "`{text}` is too long a duration; {HINT} of at most `7d`")
            }
        }
    }
}

impl std::error::Error for DurationSyntaxError {}

/// Parses `500ms`, `30s`, `5m`, `2h` or `1d` (white space around the number
/// and before the unit is allowed) into milliseconds.
///
/// ```
/// use natask_core::duration::parse_ms;
///
/// assert_eq!(parse_ms("30s"), Ok(30_000));
/// assert_eq!(
///     parse_ms("1.5s").unwrap_err().to_string(),
///     "`1.5s` is not a duration; write a whole number followed by `ms`, `s`, `m`, `h` or `d`, e.g. `30s`"
/// );
/// ```
pub fn parse_ms(text: &str) -> Result<u64, DurationSyntaxError> {
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = trimmed.split_at(digits);
    let malformed = || DurationSyntaxError::Malformed {
        text: text.to_owned(),
    };
    let number: u64 = number.parse().map_err(|_| malformed())?;
    let factor = match unit.trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(malformed()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| DurationSyntaxError::TooLong {
            text: text.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_ms("500ms"), Ok(500));
        assert_eq!(parse_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_ms("0s"), Ok(0));
        assert!(parse_ms("s").is_err());
        assert!(parse_ms("1.5s").is_err());
        assert!(parse_ms("-1s").is_err());
        assert!(parse_ms("99999999999999999d")
            .unwrap_err()
            .to_string()
            .contains("too long"));
    }
}
