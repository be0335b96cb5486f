//! natask's header names as `HeaderName` constants, built once at compile
//! time instead of parsed from a string on every insert or lookup, and the
//! few ways headers are written and read. The server's own headers come
//! from `async_nats::header`. `docs/wire-format.md` documents them all.

use std::time::SystemTime;

use async_nats::{HeaderMap, HeaderName};
use natask_core::wire;

use super::time;

pub(crate) use async_nats::header::{
    NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_TTL, NATS_SCHEDULE, NATS_SCHEDULER,
    NATS_SCHEDULE_TARGET, NATS_SCHEDULE_TIME_ZONE,
};

pub(crate) const MSG_ID: HeaderName = HeaderName::from_static(wire::HEADER_MSG_ID);
pub(crate) const ID: HeaderName = HeaderName::from_static(wire::HEADER_ID);
pub(crate) const TASK: HeaderName = HeaderName::from_static(wire::HEADER_TASK);
pub(crate) const EVENT: HeaderName = HeaderName::from_static(wire::HEADER_EVENT);
pub(crate) const FORMAT: HeaderName = HeaderName::from_static(wire::HEADER_FORMAT);
pub(crate) const ENQUEUED_AT: HeaderName = HeaderName::from_static(wire::HEADER_ENQUEUED_AT);
pub(crate) const DUE_AT: HeaderName = HeaderName::from_static(wire::HEADER_DUE_AT);
pub(crate) const CONTENT_TYPE: HeaderName = HeaderName::from_static(wire::HEADER_CONTENT_TYPE);
pub(crate) const UNIQUE: HeaderName = HeaderName::from_static(wire::HEADER_UNIQUE);
pub(crate) const UNIQUE_UNTIL: HeaderName = HeaderName::from_static(wire::HEADER_UNIQUE_UNTIL);
pub(crate) const SIGNATURE: HeaderName = HeaderName::from_static(wire::HEADER_SIGNATURE);
pub(crate) const VERSION: HeaderName = HeaderName::from_static(wire::HEADER_VERSION);

/// Headers a dead letter adds to the task's own; a replay removes them.
pub(crate) const DEAD_LETTER_HEADERS: [&str; 6] = [
    wire::HEADER_TRUNCATED,
    wire::HEADER_QUEUE,
    wire::HEADER_REASON,
    wire::HEADER_ERROR,
    wire::HEADER_ATTEMPTS,
    wire::HEADER_FAILED_AT,
];

/// The headers every message of task `task` carries, whoever publishes it:
/// a producer, a recurring schedule or a cron task's schedule; `version`
/// is its payload's (`Natask-Version`, left out for 1).
pub(crate) fn kind_headers(task: &str, version: u32) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(TASK, task);
    headers.insert(FORMAT, wire::FORMAT_VERSION);
    if version > 1 {
        headers.insert(VERSION, version.to_string().as_str());
    }
    headers
}

/// The task id a message's headers carry, as text: its `Natask-Id`, or
/// its `Nats-Msg-Id` when it has none (format 2). A present `Natask-Id`
/// wins even when it is not an id, so a bad one is reported as such.
pub(crate) fn id_text(headers: Option<&HeaderMap>) -> Option<&str> {
    get(headers, ID).or_else(|| get(headers, MSG_ID))
}

/// The payload version a message carries: 1 without the header, `None`
/// when the header is not a whole number of 1 or more.
pub(crate) fn payload_version(headers: Option<&HeaderMap>) -> Option<u32> {
    match get(headers, VERSION) {
        None => Some(1),
        Some(v) => v.trim().parse().ok().filter(|v| *v >= 1),
    }
}

/// The value of header `name`, if there is one.
pub(crate) fn get(headers: Option<&HeaderMap>, name: HeaderName) -> Option<&str> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str())
}

/// A header holding Unix milliseconds (`Natask-Enqueued-At`, `Natask-Due-At`).
pub(crate) fn time(headers: Option<&HeaderMap>, name: HeaderName) -> Option<SystemTime> {
    get(headers, name)
        .and_then(|v| v.parse::<u64>().ok())
        .map(time::from_unix_millis)
}

/// Bytes the headers take on the wire (`NATS/1.0\r\n`, `Name: value\r\n`, `\r\n`).
pub(crate) fn wire_len(headers: &HeaderMap) -> usize {
    let fields: usize = headers
        .iter()
        .map(|(name, values)| {
            values
                .iter()
                .map(|v| AsRef::<str>::as_ref(name).len() + 2 + v.as_str().len() + 2)
                .sum::<usize>()
        })
        .sum();
    10 + fields + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_length_counts_every_field() {
        let mut h = HeaderMap::new();
        h.insert("A", "bc");
        assert_eq!(wire_len(&h), 10 + "A: bc\r\n".len() + 2);
    }

    #[test]
    fn times_are_unix_millis() {
        let mut h = HeaderMap::new();
        h.insert(DUE_AT, "1700000000123");
        assert_eq!(
            time(Some(&h), DUE_AT),
            Some(time::from_unix_millis(1_700_000_000_123))
        );
        assert_eq!(time(Some(&h), ENQUEUED_AT), None);
        assert_eq!(time(None, DUE_AT), None);
    }
}
