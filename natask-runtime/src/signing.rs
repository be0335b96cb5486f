//! Signed tasks. A [`Client`](crate::Client) given a [`SigningKey`]
//! ([`Client::with_signing_key`](crate::Client::with_signing_key)) signs
//! every task it publishes with ed25519: the payload and the task headers
//! (`Natask-Signature`). A runtime that requires signatures
//! ([`RuntimeBuilder::require_signatures`](crate::RuntimeBuilder::require_signatures))
//! runs only tasks signed by one of its trusted [`PublicKey`]s and
//! dead-letters every other one, with reason `signature` and a message that
//! says which check failed. `docs/security.md` ("Signed tasks") has the
//! rules; `docs/wire-format.md` the bytes that are signed.

use std::fmt;
use std::path::{Path, PathBuf};

use async_nats::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use natask_core::wire;

use crate::jetstream::headers::{
    self, DUE_AT, FORMAT, SIGNATURE, TASK, UNIQUE, UNIQUE_UNTIL, VERSION,
};

/// What the signed bytes start with; a new layout gets a new tag.
const CONTEXT: &[u8] = b"natask-signature-v1";

/// The private half of an ed25519 key pair: signs tasks. Keep it secret;
/// its `Debug` shows only the public key's id.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// The public half of an ed25519 key pair: checks task signatures. Shown
/// (`Display`) as 64 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// A key could not be read. The message never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("could not read the key file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not 32 bytes written as 64 hexadecimal digits.
    #[error("{what} must be 32 bytes written as 64 hexadecimal digits (or, in a file, the 32 raw bytes); got {got}")]
    Format {
        /// `a signing key` or `a public key`, and where it came from.
        what: String,
        /// What was found instead, without its content.
        got: String,
    },
    /// The 32 bytes are not a point on the curve.
    #[error("{what} is not a valid ed25519 public key")]
    NotAKey {
        /// Where it came from.
        what: String,
    },
}

impl SigningKey {
    /// A new random key pair (from the operating system's generator).
    pub fn generate() -> SigningKey {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        SigningKey::from_bytes(&seed)
    }

    /// The key pair of a 32-byte ed25519 seed.
    pub fn from_bytes(seed: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The key pair of a seed written as 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Result<SigningKey, KeyError> {
        Ok(SigningKey::from_bytes(&decode_hex(hex, "a signing key")?))
    }

    /// Reads a seed file: 64 hexadecimal digits (surrounding whitespace is
    /// ignored), as [`to_hex`](Self::to_hex) writes them, or the 32 raw
    /// bytes.
    pub fn from_file(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        let what = format!("a signing key (`{}`)", path.as_ref().display());
        Ok(SigningKey::from_bytes(&read_key_file(
            path.as_ref(),
            &what,
        )?))
    }

    /// The seed as 64 hexadecimal digits, for a key file.
    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    /// Its public key, to give to the workers.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs a task message of `queue` whose headers and body are ready to
    /// be published: adds `Natask-Signature`. natask's producers call this
    /// themselves; it is public for messages built by hand as
    /// `docs/wire-format.md` describes them (the `natask enqueue` command
    /// does). Sign last: a header changed afterwards breaks the signature.
    pub fn sign(&self, queue: &str, headers: &mut HeaderMap, body: &[u8]) {
        let id = headers::id_text(Some(headers))
            .unwrap_or_default()
            .to_owned();
        let signature = self.0.sign(&signed_bytes(queue, Some(headers), &id, body));
        let value = format!(
            "{}.{}",
            self.public_key().id(),
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        );
        headers.insert(SIGNATURE, value.as_str());
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key().id())
    }
}

impl PublicKey {
    /// A public key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        Self::checked(bytes, "the public key")
    }

    /// A public key written as 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Result<PublicKey, KeyError> {
        Self::checked(&decode_hex(hex, "a public key")?, "the public key")
    }

    /// Reads a public key file: 64 hexadecimal digits or the 32 raw bytes.
    pub fn from_file(path: impl AsRef<Path>) -> Result<PublicKey, KeyError> {
        let what = format!("a public key (`{}`)", path.as_ref().display());
        Self::checked(&read_key_file(path.as_ref(), &what)?, &what)
    }

    fn checked(bytes: &[u8; 32], what: &str) -> Result<PublicKey, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::NotAKey { what: what.into() })
    }

    /// The key's short id, as `Natask-Signature` carries it: its first 4
    /// bytes in hexadecimal.
    pub fn id(&self) -> String {
        hex(&self.0.as_bytes()[..4])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// Checks the signature of a delivered task of `queue` against `trusted`;
/// the error is the dead letter's message.
pub(crate) fn verify(
    trusted: &[PublicKey],
    queue: &str,
    task: &str,
    headers: Option<&HeaderMap>,
    body: &[u8],
) -> Result<(), String> {
    let ids = || {
        let ids: Vec<_> = trusted.iter().map(PublicKey::id).collect();
        ids.join(", ")
    };
    let Some(value) = headers::get(headers, SIGNATURE) else {
        return Err(format!(
            "task `{task}` on queue `{queue}` is not signed (no `{}` header), and this worker runs only \
             tasks signed by a key it trusts ({}); give its producer the key with `Client::with_signing_key`",
            wire::HEADER_SIGNATURE,
            ids()
        ));
    };
    let malformed = || {
        format!(
            "task `{task}` on queue `{queue}` has a malformed `{}` header (expected `<key id>.<signature>`)",
            wire::HEADER_SIGNATURE
        )
    };
    let (key_id, signature) = value.split_once('.').ok_or_else(malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
        .ok_or_else(malformed)?;
    let keys: Vec<_> = trusted.iter().filter(|k| k.id() == key_id).collect();
    if keys.is_empty() {
        return Err(format!(
            "task `{task}` on queue `{queue}` was signed by key {key_id}, which this worker does not trust \
             (it trusts {})",
            ids()
        ));
    }
    // A cron tick carries no `Natask-Id` when it is signed; its dead
    // letter, and so a replay of it, gains one.
    let id = headers::id_text(headers).unwrap_or_default();
    let mut ids_signed = vec![id];
    if !id.is_empty() && headers::get(headers, headers::NATS_SCHEDULER).is_some() {
        ids_signed.push("");
    }
    let matches = ids_signed.iter().any(|id| {
        let bytes = signed_bytes(queue, headers, id, body);
        keys.iter().any(|k| k.0.verify(&bytes, &signature).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(format!(
            "task `{task}` on queue `{queue}`: its signature by key {key_id} does not match its payload \
             and task headers, which were changed after it was signed"
        ))
    }
}

/// The bytes a signature covers (`docs/wire-format.md`): a tag, then each
/// field as a 4-byte big-endian length and its bytes: the queue, the task
/// name, the id, the wire format and the payload version (`1` when their
/// header is absent), the due time, the unique lock and its stage (empty
/// when absent), and the body.
fn signed_bytes(queue: &str, headers: Option<&HeaderMap>, id: &str, body: &[u8]) -> Vec<u8> {
    let header = |name| headers::get(headers, name).unwrap_or_default();
    let format = headers::get(headers, FORMAT).unwrap_or("1");
    let version = headers::get(headers, VERSION).unwrap_or("1");
    let fields: [&[u8]; 9] = [
        queue.as_bytes(),
        header(TASK).as_bytes(),
        id.as_bytes(),
        format.as_bytes(),
        version.as_bytes(),
        header(DUE_AT).as_bytes(),
        header(UNIQUE).as_bytes(),
        header(UNIQUE_UNTIL).as_bytes(),
        body,
    ];
    let mut bytes = Vec::with_capacity(CONTEXT.len() + 64 + body.len());
    bytes.extend_from_slice(CONTEXT);
    for field in fields {
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(field);
    }
    bytes
}

fn read_key_file(path: &Path, what: &str) -> Result<[u8; 32], KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    match std::str::from_utf8(&bytes) {
        Ok(text) if text.trim().len() == 64 => decode_hex(text, what),
        _ => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Format {
            what: what.into(),
            got: format!("{} bytes", bytes.len()),
        }),
    }
}

fn decode_hex(text: &str, what: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    let invalid = |got: String| KeyError::Format {
        what: what.into(),
        got,
    };
    if text.len() != 64 {
        return Err(invalid(format!("{} characters", text.chars().count())));
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| char::from(c).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => out[i] = (hi * 16 + lo) as u8,
            _ => {
                return Err(invalid(
                    "a character that is not a hexadecimal digit".into(),
                ))
            }
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::headers::{ID, MSG_ID};

    fn task_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TASK, "send_email");
        h.insert(ID, "0192c4d2-0000-7000-8000-000000000001");
        h.insert(FORMAT, "1");
        h
    }

    #[test]
    fn a_signed_task_verifies_and_any_change_is_caught() {
        let key = SigningKey::generate();
        let trusted = [key.public_key()];
        let mut h = task_headers();
        key.sign("emails", &mut h, b"{\"to\":\"a@b\"}");
        assert_eq!(
            verify(
                &trusted,
                "emails",
                "send_email",
                Some(&h),
                b"{\"to\":\"a@b\"}"
            ),
            Ok(())
        );
        let changed_body = verify(
            &trusted,
            "emails",
            "send_email",
            Some(&h),
            b"{\"to\":\"x@y\"}",
        );
        assert!(changed_body.unwrap_err().contains("does not match"));
        let other_queue = verify(
            &trusted,
            "billing",
            "send_email",
            Some(&h),
            b"{\"to\":\"a@b\"}",
        );
        assert!(other_queue.is_err());
        let mut other_id = h.clone();
        other_id.insert(ID, "0192c4d2-0000-7000-8000-000000000002");
        assert!(verify(
            &trusted,
            "emails",
            "send_email",
            Some(&other_id),
            b"{\"to\":\"a@b\"}"
        )
        .is_err());
        let mut newer = h.clone();
        newer.insert(VERSION, "2");
        assert!(verify(
            &trusted,
            "emails",
            "send_email",
            Some(&newer),
            b"{\"to\":\"a@b\"}"
        )
        .is_err());
        let mut delayed = h.clone();
        delayed.insert(DUE_AT, "1");
        assert!(verify(
            &trusted,
            "emails",
            "send_email",
            Some(&delayed),
            b"{\"to\":\"a@b\"}"
        )
        .is_err());
    }

    #[test]
    fn a_format_2_task_is_signed_with_its_msg_id_as_its_id() {
        let key = SigningKey::generate();
        let trusted = [key.public_key()];
        let mut h = HeaderMap::new();
        h.insert(TASK, "send_email");
        h.insert(FORMAT, "2");
        h.insert(MSG_ID, "0192c4d2-0000-7000-8000-000000000001");
        key.sign("emails", &mut h, b"{}");
        assert_eq!(
            verify(&trusted, "emails", "send_email", Some(&h), b"{}"),
            Ok(())
        );
        let mut other_id = h.clone();
        other_id.insert(MSG_ID, "0192c4d2-0000-7000-8000-000000000002");
        assert!(verify(&trusted, "emails", "send_email", Some(&other_id), b"{}").is_err());
        // Its dead letter spells the id out and has a dedup id of its own;
        // a replay of it still verifies.
        let mut letter = h.clone();
        letter.insert(ID, "0192c4d2-0000-7000-8000-000000000001");
        letter.insert(MSG_ID, "0192c4d2-0000-7000-8000-000000000001:replay:7");
        assert_eq!(
            verify(&trusted, "emails", "send_email", Some(&letter), b"{}"),
            Ok(())
        );
        // A format 1 message is signed as format 1, whether it says so or not.
        let mut v1 = HeaderMap::new();
        v1.insert(TASK, "send_email");
        v1.insert(ID, "0192c4d2-0000-7000-8000-000000000001");
        key.sign("emails", &mut v1, b"{}");
        v1.insert(FORMAT, "1");
        assert_eq!(
            verify(&trusted, "emails", "send_email", Some(&v1), b"{}"),
            Ok(())
        );
    }

    #[test]
    fn unsigned_untrusted_and_malformed_are_told_apart() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let unsigned = task_headers();
        let err = verify(&[key.public_key()], "q", "t", Some(&unsigned), b"null").unwrap_err();
        assert!(err.contains("is not signed"), "{err}");
        assert!(err.contains(&key.public_key().id()), "{err}");
        let mut by_other = task_headers();
        other.sign("q", &mut by_other, b"null");
        let err = verify(&[key.public_key()], "q", "t", Some(&by_other), b"null").unwrap_err();
        assert!(err.contains("does not trust"), "{err}");
        assert!(err.contains(&other.public_key().id()), "{err}");
        let mut malformed = task_headers();
        malformed.insert(SIGNATURE, "nonsense");
        let err = verify(&[key.public_key()], "q", "t", Some(&malformed), b"null").unwrap_err();
        assert!(err.contains("malformed"), "{err}");
    }

    #[test]
    fn keys_round_trip_through_hex_and_files_and_errors_hold_no_secret() {
        let key = SigningKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("natask.seed");
        std::fs::write(&seed, format!("{}\n", key.to_hex())).unwrap();
        let read = SigningKey::from_file(&seed).unwrap();
        assert_eq!(read.public_key(), key.public_key());
        let raw = dir.path().join("natask.raw");
        std::fs::write(&raw, key.0.as_bytes()).unwrap();
        assert_eq!(
            SigningKey::from_file(&raw).unwrap().public_key(),
            key.public_key()
        );
        let public = dir.path().join("natask.pub");
        std::fs::write(&public, key.public_key().to_string()).unwrap();
        assert_eq!(PublicKey::from_file(&public).unwrap(), key.public_key());
        assert_eq!(
            PublicKey::from_hex(&key.public_key().to_string()).unwrap(),
            key.public_key()
        );

        let secret = &key.to_hex()[..63];
        let err = SigningKey::from_hex(secret).unwrap_err().to_string();
        assert!(err.contains("63 characters"), "{err}");
        assert!(!err.contains(secret), "{err}");
        let err = SigningKey::from_file(dir.path().join("missing")).unwrap_err();
        assert!(
            err.to_string().contains("could not read the key file"),
            "{err}"
        );
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }
}
