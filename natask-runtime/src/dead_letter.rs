//! Parking a task in the dead-letter stream.
//!
//! The dead letter is published and acknowledged *before* the original is
//! removed, with a deterministic `Nats-Msg-Id`, so a crash between the two
//! steps duplicates nothing (JetStream drops the second copy inside the
//! duplicate window) and loses nothing (the original is still queued).

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, AckKind};

use natask_core::wire;

use crate::client::{unix_millis, Client};
use crate::provision;

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
    /// The message lacks natask's headers.
    NotATask,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Exhausted => "exhausted",
            Reason::Fatal => "fatal",
            Reason::Decode => "decode",
            Reason::UnknownTask => "unknown_task",
            Reason::NotATask => "not_a_task",
        }
    }
}

/// Longest error text kept in a header.
const MAX_ERROR_LEN: usize = 2048;

/// Moves `msg` to the dead letters. On failure the task is handed back to
/// the queue (nak with a delay) rather than dropped.
pub(crate) async fn park(
    client: &Client,
    queue: &str,
    task: &str,
    msg: &jetstream::Message,
    reason: Reason,
    error: &str,
    attempts: u64,
) {
    let mut headers = msg.headers.clone().unwrap_or_default();
    let (stream, seq) = msg
        .info()
        .map(|i| (i.stream.to_owned(), i.stream_sequence))
        .unwrap_or_default();
    let id = headers
        .get(wire::HEADER_ID)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| format!("{stream}-{seq}"));
    headers.insert(wire::HEADER_MSG_ID, format!("{id}:dlq").as_str());
    headers.insert(wire::HEADER_QUEUE, queue);
    headers.insert(wire::HEADER_REASON, reason.as_str());
    headers.insert(wire::HEADER_ERROR, header_safe(error).as_str());
    headers.insert(wire::HEADER_ATTEMPTS, attempts.to_string().as_str());
    headers.insert(
        wire::HEADER_FAILED_AT,
        unix_millis(SystemTime::now()).to_string().as_str(),
    );

    let names = client.names();
    let dlq = names.dead_letter_stream();
    if !client.is_ensured(&dlq) {
        match provision::dead_letter_stream(client.jetstream(), names).await {
            Ok(_) => client.mark_ensured(dlq),
            Err(e) => return hand_back(msg, &id, &e).await,
        }
    }
    let subject = names.dead_letter_subject(queue, &safe_token(task));
    let stored = async {
        client
            .jetstream()
            .publish_with_headers(subject, headers, msg.payload.clone())
            .await?
            .await
            .map_err(async_nats::Error::from)
    }
    .await;
    if let Err(e) = stored {
        return hand_back(msg, &id, &*e).await;
    }
    if let Err(e) = msg.ack_with(AckKind::Term).await {
        // The dead letter is stored; the original comes back after the ack
        // wait and is parked again, which the Nats-Msg-Id deduplicates.
        tracing::warn!(%id, error = %e, "dead letter stored but the original could not be removed yet");
    }
    tracing::error!(queue, task, %id, reason = reason.as_str(), attempts, error, "task moved to the dead letters");
}

async fn hand_back(
    msg: &jetstream::Message,
    id: &str,
    error: &(dyn std::error::Error + Send + Sync),
) {
    tracing::error!(%id, error = %error, "could not store a dead letter; the task stays queued and is retried");
    // If even the nak is lost, the ack wait brings the task back.
    let _ = msg
        .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
        .await;
}

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
    fn odd_task_names_get_a_placeholder_subject() {
        assert_eq!(safe_token("send_email"), "send_email");
        assert_eq!(safe_token("a.b"), "_invalid");
        assert_eq!(safe_token(""), "_invalid");
    }
}
