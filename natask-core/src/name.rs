//! Rules for task names, queue names and the namespace prefix.
//!
//! A name becomes one token of a NATS subject (`natask.q.<queue>.<task>`) and
//! part of a JetStream stream name (`NATASK_Q_<queue>`). The intersection of
//! both rule sets, kept deliberately small so that a name is safe in every
//! NATS tool and file system, is: 1 to [`MAX_LEN`] ASCII letters, digits, `_`
//! or `-`. Everything here is `const`, so the macro output can check a name at
//! compile time.

use std::fmt;

/// Longest accepted name, in bytes.
pub const MAX_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is the empty string.
    Empty,
    /// The name is longer than [`MAX_LEN`] bytes.
    TooLong {
        /// The length of the refused name.
        len: usize,
    },
    /// The name contains a byte outside `[A-Za-z0-9_-]`.
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the name.
        at: usize,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NameError::Empty => f.write_str("the name is empty"),
            NameError::TooLong { len } => {
                write!(
                    f,
                    "the name is {len} bytes long; at most {MAX_LEN} are allowed"
                )
            }
            NameError::InvalidByte { byte, at } => {
                let shown = if byte.is_ascii_graphic() {
                    format!("`{}`", byte as char)
                } else if byte == b' ' {
                    "a space".to_owned()
                } else {
                    format!("byte 0x{byte:02x}")
                };
                write!(
                    f,
                    "the name contains {shown} at offset {at}; only ASCII letters, digits, `_` and `-` are allowed"
                )
            }
        }
    }
}

impl std::error::Error for NameError {}

/// Checks `name` against the rules above.
///
/// ```
/// use natask_core::name::{check, NameError};
/// assert!(check("send_email").is_ok());
/// assert_eq!(check("a.b"), Err(NameError::InvalidByte { byte: b'.', at: 1 }));
/// ```
pub const fn check(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > MAX_LEN {
        return Err(NameError::TooLong { len: bytes.len() });
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !is_name_byte(b) {
            return Err(NameError::InvalidByte { byte: b, at: i });
        }
        i += 1;
    }
    Ok(())
}

/// Whether `byte` may stand in a name: an ASCII letter or digit, `_` or `-`.
///
/// [`check`] reports an empty or too long name before a byte outside this
/// set; this finds such a byte in a name of any length.
pub const fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_tokens() {
        for ok in ["a", "send_email", "Emails-2", &"x".repeat(MAX_LEN)] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_subject_and_path_syntax() {
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(
            check(&"x".repeat(MAX_LEN + 1)),
            Err(NameError::TooLong { len: MAX_LEN + 1 })
        );
        for (bad, byte, at) in [
            ("a.b", b'.', 1),
            ("*", b'*', 0),
            ("q>", b'>', 1),
            ("a b", b' ', 1),
            ("a/b", b'/', 1),
            ("a\\b", b'\\', 1),
            ("tab\t", b'\t', 3),
        ] {
            assert_eq!(
                check(bad),
                Err(NameError::InvalidByte { byte, at }),
                "{bad:?}"
            );
        }
        assert_eq!(
            check("é").unwrap_err().to_string(),
            "the name contains byte 0xc3 at offset 0; only ASCII letters, digits, `_` and `-` are allowed"
        );
        assert_eq!(
            check("a b").unwrap_err().to_string(),
            "the name contains a space at offset 1; only ASCII letters, digits, `_` and `-` are allowed"
        );
    }
}
