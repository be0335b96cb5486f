//! Why an enqueue failed, and how a JetStream answer is read as one.

use std::time::Duration;

use natask_core::{Task, TaskId};

use crate::jetstream::error;
use crate::jetstream::permissions::PermissionViolation;
use crate::jetstream::provision::{ProvisionError, MESSAGE_SCHEDULES};

/// A task could not be enqueued. Nothing was stored unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// A middleware refused the task.
    #[error("task `{task}` was refused by a middleware: {reason}")]
    Rejected {
        /// The task's name.
        task: &'static str,
        /// The middleware's reason.
        reason: String,
    },
    /// The payload could not be serialised to JSON.
    #[error("task `{task}` could not be encoded as JSON")]
    Encode {
        /// The task's name.
        task: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The message is larger than the server accepts.
    #[error(
        "task `{task}` is {size} bytes with its headers, more than the server's limit of {limit} bytes \
         (max_payload); store large data elsewhere and enqueue a reference to it"
    )]
    TooLarge {
        /// The task's name.
        task: &'static str,
        /// Payload plus headers, in bytes.
        size: usize,
        /// The server's `max_payload`.
        limit: usize,
    },
    /// The queue's stream could not be created or found.
    #[error("the stream of queue `{queue}` is not available")]
    Provision {
        /// The queue.
        queue: &'static str,
        /// What went wrong.
        #[source]
        source: ProvisionError,
    },
    /// A delayed task was enqueued on a server without message schedules.
    /// Nothing was stored.
    #[error(
        "queue `{queue}` cannot hold delayed tasks: nats-server {server_version} ignores message \
         schedules, which need nats-server 2.12 or newer; upgrade the server, or enqueue without a delay"
    )]
    SchedulesUnsupported {
        /// The queue.
        queue: &'static str,
        /// The version the server reported.
        server_version: String,
    },
    /// A delayed task is due later than the year 9999, which JetStream's
    /// schedules cannot express. Nothing was stored.
    #[error("task `{task}` is due after the year 9999; use a shorter delay")]
    TooFarAhead {
        /// The task's name.
        task: &'static str,
    },
    /// No answer within the client's timeout, e.g. while NATS is
    /// unreachable. The task may or may not have been stored: enqueue it
    /// again with [`EnqueueOptions::id`](crate::EnqueueOptions::id)`(id)`,
    /// and JetStream stores it at most once (within the queue's
    /// deduplication window).
    #[error(
        "task `{task}` (id {id}) on queue `{queue}` was not confirmed within {timeout:?} and may or \
         may not be stored; is NATS reachable? enqueue it again with EnqueueOptions::id({id}) to \
         store it at most once"
    )]
    Timeout {
        /// The task's name.
        task: &'static str,
        /// The id it was sent with.
        id: TaskId,
        /// The queue.
        queue: &'static str,
        /// The client's timeout.
        timeout: Duration,
    },
    /// The server refused a publish (or a subscription) this enqueue
    /// needed for lack of permission, and so never answered it: e.g. the
    /// NATS user may publish tasks but not call the JetStream API, or not
    /// subscribe to its reply inbox. The task was not stored if the refused
    /// subject is the task's own or a JetStream API request made before
    /// it. Reported only on connections with a
    /// [`PermissionWatch`](crate::PermissionWatch) (see there); the
    /// violation is the newest the server reported while this enqueue
    /// waited.
    #[error(
        "task `{task}` on queue `{queue}` was not enqueued: permission denied: the NATS user may \
         not {violation} (the server reported a permissions violation); grant it (docs/security.md \
         lists what each role needs)"
    )]
    PermissionDenied {
        /// The task's name.
        task: &'static str,
        /// The queue.
        queue: &'static str,
        /// What the server refused.
        violation: PermissionViolation,
    },
    /// A unique task was enqueued on a server without per-message TTL,
    /// which its lock needs. Nothing was stored.
    #[error(
        "task `{task}` is unique, and its lock needs per-message TTL, which nats-server {server_version} \
         does not have; unique tasks need nats-server 2.11 or newer: upgrade the server, or enqueue \
         without uniqueness (`EnqueueOptions::not_unique`)"
    )]
    UniqueUnsupported {
        /// The task's name.
        task: &'static str,
        /// The version the server reported.
        server_version: String,
    },
    /// The lock of a unique task would be held for less than a second, the
    /// resolution of the server's per-message TTL. Nothing was stored.
    #[error(
        "the unique lock of task `{task}` would be held for {ttl:?}; hold it for at least 1 s"
    )]
    UniqueTtl {
        /// The task's name.
        task: &'static str,
        /// The TTL asked for.
        ttl: Duration,
    },
    /// The lock of a unique task could not be taken or read (in time).
    /// Nothing was stored.
    #[error("the unique lock of task `{task}` could not be taken in bucket `{bucket}`")]
    Unique {
        /// The task's name.
        task: &'static str,
        /// The key-value bucket of locks.
        bucket: String,
        /// What went wrong.
        #[source]
        source: async_nats::Error,
    },
    /// The queue holds as many tasks (or bytes) as its policy allows
    /// ([`QueuePolicy::max_tasks`](crate::QueuePolicy::max_tasks),
    /// [`QueuePolicy::max_bytes`](crate::QueuePolicy::max_bytes)) and
    /// refuses more ([`WhenFull::Refuse`](crate::WhenFull::Refuse)). Nothing
    /// was stored, and nothing queued was lost.
    #[error(
        "queue `{queue}` is full (its {limit}), so task `{task}` was not stored and no queued task \
         was lost; enqueue it again once workers have taken some, or raise the queue's \
         `max_tasks`/`max_bytes` (Queue::update applies a raised limit)"
    )]
    QueueFull {
        /// The task's name.
        task: &'static str,
        /// The queue.
        queue: &'static str,
        /// The limit reached.
        limit: QueueLimit,
    },
    /// JetStream did not acknowledge the task (in time). It may or may not
    /// have been stored; enqueueing the same payload again is safe only for
    /// idempotent tasks (or with the same [`EnqueueOptions::id`](crate::EnqueueOptions::id)).
    #[error("JetStream did not confirm task `{task}` on queue `{queue}`")]
    JetStream {
        /// The task's name.
        task: &'static str,
        /// The queue.
        queue: &'static str,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

/// The limit of a full queue ([`EnqueueError::QueueFull`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueLimit {
    /// [`QueuePolicy::max_tasks`](crate::QueuePolicy::max_tasks).
    MaxTasks,
    /// [`QueuePolicy::max_bytes`](crate::QueuePolicy::max_bytes).
    MaxBytes,
}

impl std::fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueueLimit::MaxTasks => "max_tasks",
            QueueLimit::MaxBytes => "max_bytes",
        })
    }
}

/// What a failure to provision `queue` means to a producer.
pub(crate) fn provision_error(queue: &'static str, source: ProvisionError) -> EnqueueError {
    match source {
        ProvisionError::Unsupported {
            feature: MESSAGE_SCHEDULES,
            server_version,
            ..
        } => EnqueueError::SchedulesUnsupported {
            queue,
            server_version,
        },
        source => EnqueueError::Provision { queue, source },
    }
}

/// What a failed publish of `T` means: a full queue, or JetStream's silence.
pub(crate) fn publish_error<T: Task>(source: async_nats::Error) -> EnqueueError {
    if let Some(limit) = full_queue(&*source) {
        return EnqueueError::QueueFull {
            task: T::NAME,
            queue: T::QUEUE,
            limit,
        };
    }
    EnqueueError::JetStream {
        task: T::NAME,
        queue: T::QUEUE,
        source,
    }
}

/// The limit a stream with discard-new refused a message for: JetStream
/// answers error 10077 ("maximum messages exceeded", "maximum bytes
/// exceeded").
fn full_queue(e: &(dyn std::error::Error + 'static)) -> Option<QueueLimit> {
    if !error::is(e, error::Code::STREAM_STORE_FAILED) {
        return None;
    }
    match error::description(e)?.as_str() {
        "maximum messages exceeded" => Some(QueueLimit::MaxTasks),
        "maximum bytes exceeded" => Some(QueueLimit::MaxBytes),
        _ => None,
    }
}
