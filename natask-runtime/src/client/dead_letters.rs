//! The dead letters of every queue, as an operator sees them
//! ([`Client::dead_letters`](crate::Client::dead_letters)): list, read,
//! replay and purge. Workers park tasks there (`worker::dead_letter`).

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, stream};

use natask_core::wire;
use natask_core::TaskId;

use super::Client;
use crate::jetstream::headers::DEAD_LETTER_HEADERS;
use crate::jetstream::permissions::PermissionViolation;
use crate::jetstream::time;

/// The dead letters of every queue, as
/// [`Client::dead_letters`](crate::Client::dead_letters) hands them out.
/// Cheap to clone.
///
/// ```no_run
/// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let dead = client.dead_letters();
/// for letter in dead.list("emails", 0, 100).await? {
///     println!("{} ({}): {}", letter.id, letter.reason, letter.error);
/// }
/// let replayed = dead.replay_all("emails").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DeadLetters {
    client: Client,
}

/// One parked task, as stored in the dead-letter stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The task id. A message that had no valid `Natask-Id` was given one
    /// when it was parked (a UUIDv7 from its stream time and sequence). A
    /// letter natask 0.1 parked without one (subject ending in
    /// `<stream>-<sequence>`) reads with an id made of its dead-letter
    /// sequence, which [`DeadLetters::get`] does not find; purge it.
    pub id: TaskId,
    /// The task name, if the message had one; for an event's letter, the
    /// event name (and [`queue`](Self::queue) is the subscription).
    pub task: Option<String>,
    /// The queue the task was taken from.
    pub queue: String,
    /// Why it was parked: `exhausted`, `fatal`, `decode`, `unknown_task`,
    /// `unknown_format`, `not_a_task` or `duplicate_id` (the message reused
    /// the id of another task; the letter's own id is then derived from
    /// the message, and its `Natask-Id` header keeps the reused one).
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
        // Letters parked by natask 0.1 without a valid task id end in
        // `<stream>-<sequence>`; they get an id from their own sequence.
        let id = m
            .subject
            .rsplit('.')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| TaskId::from(uuid::Uuid::from_u128(u128::from(m.sequence))));
        DeadLetter {
            task: h(wire::HEADER_TASK).or_else(|| h(wire::HEADER_EVENT)),
            queue: h(wire::HEADER_QUEUE).unwrap_or_default(),
            reason: h(wire::HEADER_REASON).unwrap_or_default(),
            error: h(wire::HEADER_ERROR).unwrap_or_default(),
            attempts: h(wire::HEADER_ATTEMPTS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            failed_at: h(wire::HEADER_FAILED_AT)
                .and_then(|v| v.parse().ok())
                .map(time::from_unix_millis),
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
        id: TaskId,
    },
    /// The dead letter cannot go back to a queue.
    #[error("dead letter `{id}` cannot be replayed: {why}")]
    NotReplayable {
        /// Its id.
        id: TaskId,
        /// Why not.
        why: &'static str,
    },
    /// A queue or task name given to select dead letters breaks natask's
    /// naming rules (it would not select what it says).
    #[error("`{name}` is not a valid queue or task name")]
    InvalidName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        #[source]
        source: natask_core::name::NameError,
    },
    /// The server refused a request for lack of permission, and so never
    /// answered it (reported on connections with a
    /// [`PermissionWatch`](crate::PermissionWatch)).
    #[error(
        "the dead-letter stream could not be {action}: permission denied: the NATS user may not \
         {violation} (the server reported a permissions violation); grant it (docs/security.md \
         lists what each role needs)"
    )]
    PermissionDenied {
        /// What was being done.
        action: &'static str,
        /// What the server refused.
        violation: PermissionViolation,
    },
    /// JetStream refused or did not answer.
    #[error("the dead-letter stream could not be {action}")]
    JetStream {
        /// What was being done.
        action: &'static str,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

impl DeadLetters {
    pub(crate) fn new(client: Client) -> DeadLetters {
        DeadLetters { client }
    }

    /// A failed request: refused by the server's permissions if JetStream
    /// did not answer and the server reported a violation meanwhile.
    fn failed(&self, action: &'static str) -> impl FnOnce(async_nats::Error) -> DeadLetterError {
        let provisioner = std::sync::Arc::clone(self.client.provisioner());
        move |source| match provisioner.explain(&*source) {
            Some(violation) => DeadLetterError::PermissionDenied { action, violation },
            None => DeadLetterError::JetStream { action, source },
        }
    }

    async fn stream(&self) -> Result<&stream::Stream, DeadLetterError> {
        self.client
            .provisioner()
            .dead_letters()
            .await
            .map_err(|e| self.failed("opened")(e.into()))
    }

    /// Up to `limit` dead letters of `queue`, oldest first, with sequence
    /// greater than `after` (start with 0; continue with the last
    /// letter's [`DeadLetter::sequence`]).
    pub async fn list(
        &self,
        queue: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        self.list_matching(Some(queue), None, after, limit).await
    }

    /// Like [`list`](Self::list), for the dead letters of `queue` (every
    /// queue when `None`) and of task `task` (every task when `None`), as
    /// an operator tool selects them.
    pub async fn list_matching(
        &self,
        queue: Option<&str>,
        task: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let filter = self.filter(queue, task)?;
        let stream = self.stream().await?;
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
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(self.failed("read")(e.into())),
            }
        }
        Ok(out)
    }

    /// The subjects of the dead letters of `queue` and `task` (each `None`
    /// for all), after checking the names: a wildcard in one would widen
    /// the selection.
    fn filter(&self, queue: Option<&str>, task: Option<&str>) -> Result<String, DeadLetterError> {
        for name in [queue, task].into_iter().flatten() {
            natask_core::name::check(name).map_err(|source| DeadLetterError::InvalidName {
                name: name.to_owned(),
                source,
            })?;
        }
        let names = self.client.names();
        Ok(match (queue, task) {
            (None, None) => names.dead_letter_filter(),
            (Some(queue), None) => names.dead_letter_queue_filter(queue),
            (queue, Some(task)) => names.dead_letter_subject(queue.unwrap_or("*"), task, "*"),
        })
    }

    /// The dead letter of task `id` (for an event that several
    /// subscriptions parked, the newest; see [`get_in`](Self::get_in)).
    pub async fn get(&self, id: TaskId) -> Result<DeadLetter, DeadLetterError> {
        let filter = self.client.names().dead_letter_id_filter(&id.to_string());
        self.last(filter, id).await
    }

    /// The dead letter of task `id` from `queue`; for an event, the letter
    /// of the subscription `queue` (`<service>__<handler>`), when several
    /// services parked the same event.
    pub async fn get_in(&self, queue: &str, id: TaskId) -> Result<DeadLetter, DeadLetterError> {
        self.filter(Some(queue), None)?;
        let filter = self
            .client
            .names()
            .dead_letter_subject(queue, "*", &id.to_string());
        self.last(filter, id).await
    }

    /// The newest dead letter on `filter`, the subjects of `id`'s.
    async fn last(&self, filter: String, id: TaskId) -> Result<DeadLetter, DeadLetterError> {
        let stream = self.stream().await?;
        match stream.direct_get_last_for_subject(filter).await {
            Ok(m) => Ok(DeadLetter::from_stored(m)),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => {
                Err(DeadLetterError::NotFound { id })
            }
            Err(e) => Err(self.failed("read")(e.into())),
        }
    }

    /// Puts task `id` back on its queue with its attempts reset (same id,
    /// same payload and headers), then removes the dead letter.
    pub async fn replay(&self, id: TaskId) -> Result<(), DeadLetterError> {
        let letter = self.get(id).await?;
        self.replay_letter(letter).await
    }

    /// Replays the dead letter [`get_in`](Self::get_in) finds: for an
    /// event, back to the subscription `queue` only.
    pub async fn replay_in(&self, queue: &str, id: TaskId) -> Result<(), DeadLetterError> {
        let letter = self.get_in(queue, id).await?;
        self.replay_letter(letter).await
    }

    /// Replays `letter`, as [`list`](Self::list) returned it: that letter
    /// (by its queue and id), even when several subscriptions parked one
    /// event under one id.
    pub async fn replay_listed(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        match natask_core::name::check(&letter.queue) {
            Ok(()) => self.replay_in(&letter.queue, letter.id).await,
            Err(_) => self.replay(letter.id).await,
        }
    }

    /// Replays every dead letter of `queue`; returns how many went back.
    pub async fn replay_all(&self, queue: &str) -> Result<usize, DeadLetterError> {
        let mut replayed = 0;
        let mut after = 0;
        loop {
            let page = self.list(queue, after, 256).await?;
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
    pub async fn purge(&self, queue: &str) -> Result<u64, DeadLetterError> {
        self.purge_matching(Some(queue), None).await
    }

    /// Deletes the dead letters of `queue` (every queue when `None`) and of
    /// task `task` (every task when `None`); returns how many were deleted.
    pub async fn purge_matching(
        &self,
        queue: Option<&str>,
        task: Option<&str>,
    ) -> Result<u64, DeadLetterError> {
        let filter = self.filter(queue, task)?;
        let stream = self.stream().await?;
        let purged = stream
            .purge()
            .filter(filter)
            .await
            .map_err(|e| self.failed("purged")(e.into()))?;
        Ok(purged.purged)
    }

    async fn replay_letter(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        let not_replayable = |why| DeadLetterError::NotReplayable { id: letter.id, why };
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
        if letter.headers.get(wire::HEADER_TRUNCATED).is_some() {
            return Err(not_replayable(
                "its body was cut to fit the server's max_payload (Natask-Truncated); \
                 enqueue the task again from its source",
            ));
        }
        // An event's letter goes back to the subscription that parked it
        // (`queue` is its consumer's name), not to every service.
        let event = letter.headers.get(wire::HEADER_EVENT).is_some();
        let provisioner = self.client.provisioner();
        let ensured = if event {
            let retention = Duration::from_millis(natask_core::event::DEFAULT_RETENTION_MS);
            provisioner.ensure_event(task, retention).await
        } else {
            provisioner.ensure_queue(&letter.queue).await
        };
        ensured.map_err(|e| self.failed("replayed")(e.into()))?;
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
        let names = self.client.names();
        let subject = if event {
            names.event_replay_subject(task, &letter.queue)
        } else if self.client.tracks(&letter.queue) {
            names.waiting_subject(&letter.queue, task, &letter.id.to_string())
        } else {
            names.task_subject(&letter.queue, task)
        };
        self.client
            .jetstream()
            .publish_with_headers(subject, clean, letter.payload.clone())
            .await
            .map_err(|e| self.failed("replayed")(e.into()))?
            .await
            .map_err(|e| self.failed("replayed")(e.into()))?;
        self.stream()
            .await?
            .delete_message(letter.sequence)
            .await
            .map_err(|e| self.failed("cleaned up after a replay")(e.into()))?;
        tracing::info!(id = %letter.id, queue = %letter.queue, task, "dead letter replayed");
        Ok(())
    }
}
