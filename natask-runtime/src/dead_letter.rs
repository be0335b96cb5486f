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
    let id = match crate::worker::task_id(msg) {
        Some(id) => {
            // A cron tick has no `Natask-Id`; its dead letter gets the id the
            // worker gave it, so it can be found and replayed like any task.
            if headers.get(wire::HEADER_ID).is_none() {
                headers.insert(wire::HEADER_ID, id.to_string().as_str());
            }
            id.to_string()
        }
        None => format!("{stream}-{seq}"),
    };
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
        match provision::dead_letter_stream(client.jetstream(), names, client.provisioning()).await
        {
            Ok(_) => client.mark_ensured(dlq),
            Err(e) => return hand_back(msg, &id, &e).await,
        }
    }
    let subject = names.dead_letter_subject(queue, &safe_token(task), &safe_token(&id));
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
    #[cfg(feature = "metrics")]
    crate::metrics::dead_lettered(queue, task, reason.as_str());
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

/// One parked task, as stored in the dead-letter stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The task id (for a message without a valid id: `<stream>-<sequence>`).
    pub id: String,
    /// The task name, if the message had one.
    pub task: Option<String>,
    /// The queue the task was taken from.
    pub queue: String,
    /// Why it was parked: `exhausted`, `fatal`, `decode`, `unknown_task` or `not_a_task`.
    pub reason: String,
    /// The last error.
    pub error: String,
    /// Attempts spent.
    pub attempts: u64,
    /// When it was parked.
    pub failed_at: Option<SystemTime>,
    /// The original payload.
    pub payload: bytes::Bytes,
    /// Every header: the original ones and the dead-letter ones.
    pub headers: async_nats::HeaderMap,
    /// Sequence in the dead-letter stream; pass it as `after` to read the next page.
    pub sequence: u64,
}

impl DeadLetter {
    fn from_stored(m: jetstream::message::StreamMessage) -> DeadLetter {
        let h = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
        let id = m.subject.rsplit('.').next().unwrap_or_default().to_owned();
        DeadLetter {
            task: h(wire::HEADER_TASK),
            queue: h(wire::HEADER_QUEUE).unwrap_or_default(),
            reason: h(wire::HEADER_REASON).unwrap_or_default(),
            error: h(wire::HEADER_ERROR).unwrap_or_default(),
            attempts: h(wire::HEADER_ATTEMPTS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            failed_at: h(wire::HEADER_FAILED_AT)
                .and_then(|v| v.parse().ok())
                .map(|ms| std::time::UNIX_EPOCH + Duration::from_millis(ms)),
            id,
            payload: m.payload,
            headers: m.headers,
            sequence: m.sequence,
        }
    }
}

/// A dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// No dead letter has this id.
    #[error("no dead letter with id `{id}`")]
    NotFound {
        /// The id looked for.
        id: String,
    },
    /// The dead letter cannot go back to a queue.
    #[error("dead letter `{id}` cannot be replayed: {why}")]
    NotReplayable {
        /// Its id.
        id: String,
        /// Why not.
        why: &'static str,
    },
    /// NATS or JetStream failed.
    #[error("the dead-letter stream could not be {action}")]
    Nats {
        /// What was being done.
        action: &'static str,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

fn nats_err(action: &'static str) -> impl FnOnce(async_nats::Error) -> DeadLetterError {
    move |source| DeadLetterError::Nats { action, source }
}

/// Headers a dead letter adds; removed again on replay.
const DEAD_LETTER_HEADERS: [&str; 5] = [
    wire::HEADER_QUEUE,
    wire::HEADER_REASON,
    wire::HEADER_ERROR,
    wire::HEADER_ATTEMPTS,
    wire::HEADER_FAILED_AT,
];

impl Client {
    async fn dead_letter_stream(&self) -> Result<jetstream::stream::Stream, DeadLetterError> {
        provision::dead_letter_stream(self.jetstream(), self.names(), self.provisioning())
            .await
            .map_err(|e| DeadLetterError::Nats {
                action: "opened",
                source: e.into(),
            })
    }

    /// Up to `limit` dead letters of `queue`, oldest first, with sequence
    /// greater than `after` (start with 0; continue with the last
    /// letter's [`DeadLetter::sequence`]).
    pub async fn dead_letters(
        &self,
        queue: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let stream = self.dead_letter_stream().await?;
        let filter = self.names().dead_letter_queue_filter(queue);
        let mut out = Vec::new();
        let mut next = after + 1;
        while out.len() < limit {
            match stream
                .direct_get_next_for_subject(filter.as_str(), Some(next))
                .await
            {
                Ok(m) => {
                    next = m.sequence + 1;
                    out.push(DeadLetter::from_stored(m));
                }
                Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(nats_err("read")(e.into())),
            }
        }
        Ok(out)
    }

    /// The dead letter of task `id`.
    pub async fn dead_letter(&self, id: &str) -> Result<DeadLetter, DeadLetterError> {
        let stream = self.dead_letter_stream().await?;
        match stream
            .direct_get_last_for_subject(self.names().dead_letter_id_filter(id))
            .await
        {
            Ok(m) => Ok(DeadLetter::from_stored(m)),
            Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => {
                Err(DeadLetterError::NotFound { id: id.to_owned() })
            }
            Err(e) => Err(nats_err("read")(e.into())),
        }
    }

    /// Puts task `id` back on its queue with its attempts reset (same id,
    /// same payload and headers), then removes the dead letter.
    pub async fn replay(&self, id: &str) -> Result<(), DeadLetterError> {
        let letter = self.dead_letter(id).await?;
        self.replay_letter(letter).await
    }

    /// Replays every dead letter of `queue`; returns how many went back.
    pub async fn replay_all(&self, queue: &str) -> Result<usize, DeadLetterError> {
        let mut replayed = 0;
        let mut after = 0;
        loop {
            let page = self.dead_letters(queue, after, 256).await?;
            let Some(last) = page.last() else { break };
            after = last.sequence;
            for letter in page {
                if letter.task.is_some() {
                    self.replay_letter(letter).await?;
                    replayed += 1;
                }
            }
        }
        Ok(replayed)
    }

    /// Deletes every dead letter of `queue`; returns how many were deleted.
    pub async fn purge_dead_letters(&self, queue: &str) -> Result<u64, DeadLetterError> {
        let stream = self.dead_letter_stream().await?;
        let purged = stream
            .purge()
            .filter(self.names().dead_letter_queue_filter(queue))
            .await
            .map_err(|e| nats_err("purged")(e.into()))?;
        Ok(purged.purged)
    }

    async fn replay_letter(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        let not_replayable = |why| DeadLetterError::NotReplayable {
            id: letter.id.clone(),
            why,
        };
        let Some(task) = letter
            .task
            .as_deref()
            .filter(|t| natask_core::name::check(t).is_ok())
        else {
            return Err(not_replayable("it has no valid task name"));
        };
        if natask_core::name::check(&letter.queue).is_err() {
            return Err(not_replayable("it has no valid queue name"));
        }
        self.ensure_stream_of(&letter.queue)
            .await
            .map_err(|e| nats_err("replayed")(e.into()))?;
        let mut clean = async_nats::HeaderMap::new();
        for (name, values) in letter.headers.iter() {
            let name: &str = name.as_ref();
            if DEAD_LETTER_HEADERS.contains(&name) || name == wire::HEADER_MSG_ID {
                continue;
            }
            for value in values {
                clean.append(name, value.as_str());
            }
        }
        // A fresh dedup id: the original's may still be inside the window.
        clean.insert(
            wire::HEADER_MSG_ID,
            format!("{}:replay:{}", letter.id, letter.sequence).as_str(),
        );
        let subject = self.names().task_subject(&letter.queue, task);
        self.jetstream()
            .publish_with_headers(subject, clean, letter.payload.clone())
            .await
            .map_err(|e| nats_err("replayed")(e.into()))?
            .await
            .map_err(|e| nats_err("replayed")(e.into()))?;
        let stream = self.dead_letter_stream().await?;
        stream
            .delete_message(letter.sequence)
            .await
            .map_err(|e| nats_err("cleaned up after a replay")(e.into()))?;
        tracing::info!(id = %letter.id, queue = %letter.queue, task, "dead letter replayed");
        Ok(())
    }
}
