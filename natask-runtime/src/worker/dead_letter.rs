//! Parking a task in the dead-letter stream.
//!
//! The dead letter is published and acknowledged *before* the original is
//! removed, with a deterministic `Nats-Msg-Id`, so a crash between the two
//! steps duplicates nothing (JetStream drops the second copy inside the
//! duplicate window) and loses nothing (the original is still queued).

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use bytes::Bytes;

use natask_core::wire;
use natask_core::TaskId;

use super::message;
use crate::jetstream::{headers, time};
use crate::Client;

/// Why a task was parked; sent as `Natask-Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Its attempts ran out.
    Exhausted,
    /// The handler said not to retry.
    Fatal,
    /// The payload does not decode into the task's type.
    Decode,
    /// No handler in this worker knows the task name.
    UnknownTask,
    /// The task is in a wire format (`Natask-Format`) this worker does not read.
    UnknownFormat,
    /// The task's payload version (`Natask-Version`) is newer than its
    /// handler's here, and no worker took it during the grace.
    UnknownVersion,
    /// The message lacks natask's headers.
    NotATask,
    /// The worker requires signed tasks and this one's signature is
    /// missing, by a key it does not trust, or does not match.
    Signature,
    /// The message reuses the id of another task, whose state is kept.
    DuplicateId,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Exhausted => "exhausted",
            Reason::Fatal => "fatal",
            Reason::Decode => "decode",
            Reason::UnknownTask => "unknown_task",
            Reason::UnknownFormat => "unknown_format",
            Reason::UnknownVersion => "unknown_version",
            Reason::NotATask => "not_a_task",
            Reason::Signature => "signature",
            Reason::DuplicateId => "duplicate_id",
        }
    }
}

/// What a dead letter says about the task it holds.
#[derive(Debug)]
pub(crate) struct Parking<'a> {
    pub(crate) queue: &'a str,
    /// The task name (empty when the message had none).
    pub(crate) task: &'a str,
    pub(crate) reason: Reason,
    pub(crate) error: &'a str,
    /// Attempts spent.
    pub(crate) attempts: u64,
}

/// Longest error text kept in a header.
const MAX_ERROR_LEN: usize = 2048;

/// Moves `msg` to the dead letters. On failure the task is handed back to
/// the queue (nak with a delay) rather than dropped.
pub(crate) async fn park(client: &Client, msg: &jetstream::Message, parking: &Parking<'_>) {
    let Parking {
        queue,
        task,
        reason,
        error,
        attempts,
    } = *parking;
    // A cron tick has no `Natask-Id`, nor has a message that is not a
    // task; its dead letter gets the id the worker gave it (or one from the
    // message), so it can be found and replayed like any task.
    // A message reusing another task's id gets one from the message too:
    // under the reused id, its letter would be deduplicated against (or
    // found by `get` instead of) the other task's own dead letter.
    let named = match reason {
        Reason::DuplicateId => None,
        _ => message::task_id(msg),
    };
    let id = named
        .or_else(|| message::message_id(msg))
        .unwrap_or_else(TaskId::new);
    let mut headers = msg.headers.clone().unwrap_or_default();
    if headers.get(wire::HEADER_ID).is_none() {
        headers.insert(wire::HEADER_ID, id.to_string().as_str());
    }
    // Per stored message, not per task: a crash between storing the
    // letter and removing the original redelivers the same message (same
    // sequence), which this deduplicates; a replayed task is a new message
    // whose letter must not be taken for a duplicate of the one replayed.
    // An event is one message that every subscription may park: each
    // subscription's letter is its own.
    let dedup = match msg.info() {
        Ok(info) if info.consumer != wire::CONSUMER => {
            format!("{id}:dlq:{}:{}", info.stream_sequence, info.consumer)
        }
        Ok(info) => format!("{id}:dlq:{}", info.stream_sequence),
        Err(_) => format!("{id}:dlq"),
    };
    headers.insert(wire::HEADER_MSG_ID, dedup.as_str());
    headers.insert(wire::HEADER_QUEUE, queue);
    headers.insert(wire::HEADER_REASON, reason.as_str());
    headers.insert(wire::HEADER_ERROR, header_safe(error).as_str());
    headers.insert(wire::HEADER_ATTEMPTS, attempts.to_string().as_str());
    headers.insert(
        wire::HEADER_FAILED_AT,
        time::unix_millis(SystemTime::now()).to_string().as_str(),
    );
    if let Err(e) = client.provisioner().dead_letters().await {
        return hand_back(msg, id, &e).await;
    }
    let limit = client.nats().server_info().max_payload;
    let payload = fitted(&mut headers, &msg.payload, limit);
    let names = client.names();
    let subject = names.dead_letter_subject(queue, &safe_token(task), &id.to_string());
    let stored = async {
        client
            .jetstream()
            .publish_with_headers(subject, headers, payload)
            .await?
            .await
            .map_err(async_nats::Error::from)
    }
    .await;
    if let Err(e) = stored {
        return hand_back(msg, id, &*e).await;
    }
    if let Err(e) = msg.ack_with(AckKind::Term).await {
        // The dead letter is stored; the original comes back after the ack
        // wait and is parked again, which the Nats-Msg-Id deduplicates.
        tracing::warn!(%id, error = %e, "dead letter stored but the original could not be removed yet");
    }
    tracing::error!(queue, task, %id, reason = reason.as_str(), attempts, error, "task moved to the dead letters");
    #[cfg(feature = "metrics")]
    crate::metrics::dead_lettered(queue, task, reason.as_str());
}

async fn hand_back(
    msg: &jetstream::Message,
    id: TaskId,
    error: &(dyn std::error::Error + Send + Sync),
) {
    tracing::error!(%id, error = %error, "could not store a dead letter; the task stays queued and is retried");
    // If even the nak is lost, the ack wait brings the task back.
    let _ = msg
        .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
        .await;
}

/// The body a dead letter can hold with `headers` under the server's
/// `max_payload` (`limit`): all of `body`, or as much as fits, with
/// `Natask-Truncated` saying how large it was. A task just under the
/// limit would otherwise never fit beside the dead letter's own headers,
/// and would loop between the queue and a failed park forever. Headers
/// that alone leave no room, or that JetStream would refuse
/// ([`MAX_HEADERS_LEN`]), keep only natask's own.
fn fitted(headers: &mut HeaderMap, body: &Bytes, limit: usize) -> Bytes {
    if headers::wire_len(headers) > MAX_HEADERS_LEN {
        keep_own(headers);
    }
    if limit == 0 || body.len() + headers::wire_len(headers) <= limit {
        return body.clone();
    }
    headers.insert(wire::HEADER_TRUNCATED, body.len().to_string().as_str());
    if headers::wire_len(headers) + TRUNCATION_ROOM > limit {
        keep_own(headers);
    }
    let room = limit.saturating_sub(headers::wire_len(headers) + TRUNCATION_ROOM);
    body.slice(..room.min(body.len()))
}

/// Keeps only natask's own headers (`Natask-*`, `Nats-Msg-Id`).
fn keep_own(headers: &mut HeaderMap) {
    let own: Vec<_> = headers
        .iter()
        .filter(|(name, _)| {
            let name: &str = name.as_ref();
            name.starts_with("Natask-") || name == wire::HEADER_MSG_ID
        })
        .map(|(name, values)| (name.clone(), values.clone()))
        .collect();
    let mut kept = HeaderMap::new();
    for (name, values) in own {
        for value in values {
            kept.append(name.clone(), value);
        }
    }
    *headers = kept;
}

/// The longest header block JetStream stores, whatever `max_payload`
/// (nats-server answers "header size exceeds maximum allowed of 64k",
/// error 10097): a task whose headers are just under it would otherwise
/// never fit beside a dead letter's own, and loop like a task too large.
const MAX_HEADERS_LEN: usize = 65_535;

/// Bytes left free below `max_payload` when a dead letter is cut: the
/// protocol line's subject and sizes count against the limit on some
/// servers.
const TRUNCATION_ROOM: usize = 512;

/// Header values cannot hold line breaks; long errors are cut.
fn header_safe(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// A task name taken from a header may be anything; subjects need a token.
fn safe_token(name: &str) -> String {
    if natask_core::name::check(name).is_ok() {
        name.to_owned()
    } else {
        "_invalid".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_fit_in_a_header() {
        assert_eq!(header_safe("a\r\nb"), "a  b");
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = header_safe(&long);
        assert!(cut.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn headers_jetstream_would_refuse_keep_only_natasks_own() {
        let mut h = HeaderMap::new();
        h.insert(wire::HEADER_TASK, "count");
        h.insert("X-Big", "a".repeat(MAX_HEADERS_LEN).as_str());
        let body = Bytes::from_static(b"{}");
        assert_eq!(fitted(&mut h, &body, 1 << 20), body, "the body is whole");
        assert!(h.get("X-Big").is_none());
        assert!(h.get(wire::HEADER_TRUNCATED).is_none());
        assert_eq!(h.get(wire::HEADER_TASK).unwrap().as_str(), "count");
    }

    #[test]
    fn odd_task_names_get_a_placeholder_subject() {
        assert_eq!(safe_token("send_email"), "send_email");
        assert_eq!(safe_token("a.b"), "_invalid");
        assert_eq!(safe_token(""), "_invalid");
    }
}
