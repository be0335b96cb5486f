//! What a delivered task message says about itself: its name, id,
//! delivery count, times and the headers a handler sees.

use std::time::SystemTime;

use async_nats::jetstream;
use async_nats::HeaderName;

use natask_core::wire;
use natask_core::{Headers, TaskId};

use crate::jetstream::headers::{self, ENQUEUED_AT, ID, NATS_SCHEDULER};
use crate::jetstream::time;

/// The value of header `name`.
pub(crate) fn header(msg: &jetstream::Message, name: HeaderName) -> Option<&str> {
    headers::get(msg.headers.as_ref(), name)
}

/// A header holding Unix milliseconds (`Natask-Enqueued-At`, `Natask-Due-At`).
pub(crate) fn header_time(msg: &jetstream::Message, name: HeaderName) -> Option<SystemTime> {
    headers::time(msg.headers.as_ref(), name)
}

/// The task's id: its `Natask-Id` header; for a tick of a cron task or
/// recurring schedule (produced by a schedule, `Nats-Scheduler` set, and no
/// `Natask-Id` since it would be the same on every tick), an id derived
/// from the message (see [`message_id`]); otherwise its `Nats-Msg-Id`
/// (format 2).
pub(crate) fn task_id(msg: &jetstream::Message) -> Option<TaskId> {
    if header(msg, ID).is_none() && header(msg, NATS_SCHEDULER).is_some() {
        return message_id(msg);
    }
    headers::id_text(msg.headers.as_ref())?.parse().ok()
}

/// When the task was enqueued: its `Natask-Enqueued-At`, or when the
/// stream stored the message (format 2).
pub(crate) fn enqueued_at(msg: &jetstream::Message) -> Option<SystemTime> {
    header_time(msg, ENQUEUED_AT).or_else(|| {
        let info = msg.info().ok()?;
        time::from_unix_nanos(info.published.unix_timestamp_nanos())
    })
}

/// An id derived from the message itself: a UUIDv7 with the time it was
/// stored and its stream sequence, so every delivery of one message has
/// the same id and no two messages of a queue share one. Ticks get theirs
/// this way, and so does a message without a valid id when it is
/// dead-lettered.
pub(crate) fn message_id(msg: &jetstream::Message) -> Option<TaskId> {
    let info = msg.info().ok()?;
    let millis = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).ok()?;
    let mut rest = [0u8; 10];
    rest[..8].copy_from_slice(&info.stream_sequence.to_be_bytes());
    // Two queues' streams can store a tick at the same millisecond and
    // sequence; the stream name's hash keeps their ids apart.
    let hash = info
        .stream
        .bytes()
        .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)));
    rest[8..].copy_from_slice(&hash.to_be_bytes());
    Some(
        uuid::Builder::from_unix_timestamp_millis(millis, &rest)
            .into_uuid()
            .into(),
    )
}

/// The message's sequence in its queue's stream. Task states record it,
/// so a worker tells the message of a task from another message reusing
/// its id (`attempt::classify`).
pub(crate) fn stream_sequence(msg: &jetstream::Message) -> Option<u64> {
    msg.info().ok().map(|info| info.stream_sequence)
}

/// How often JetStream has delivered the message (at least 1).
pub(crate) fn delivered(msg: &jetstream::Message) -> u64 {
    msg.info()
        .ok()
        .and_then(|i| u64::try_from(i.delivered).ok())
        .unwrap_or(1)
        .max(1)
}

/// The message's headers for [`TaskContext::headers`](natask_core::TaskContext::headers),
/// without natask's own (`Natask-*`, `Nats-Msg-Id`): the context carries
/// those already, and most tasks then need no allocation here.
pub(crate) fn context_headers(msg: &jetstream::Message) -> Headers {
    let mut out = Headers::new();
    if let Some(headers) = &msg.headers {
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            if is_natask_header(name) {
                continue;
            }
            for value in values {
                out.push(name, value.as_str());
            }
        }
    }
    out
}

fn is_natask_header(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("Natask-"))
        || name.eq_ignore_ascii_case(wire::HEADER_MSG_ID)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natask_headers_stay_out_of_the_context() {
        assert!(is_natask_header("Natask-Task"));
        assert!(is_natask_header("natask-id"));
        assert!(is_natask_header("Nats-Msg-Id"));
        assert!(!is_natask_header("traceparent"));
        assert!(!is_natask_header("Natas"));
        assert!(!is_natask_header("X-Tenant"));
    }
}
