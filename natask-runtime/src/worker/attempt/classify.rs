//! What a delivered message is, decided before anything runs.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::future::OptionFuture;
use tokio::task::JoinHandle;

use natask_core::wire;
use natask_core::{TaskContext, TaskEntry, TaskId};

use super::Delivery;
use crate::jetstream::headers;
use crate::jetstream::headers::{DUE_AT, EVENT, FORMAT, MSG_ID, NATS_SCHEDULER, TASK};
use crate::jetstream::time;
use crate::signing;
use crate::store::cancellations::Running;
use crate::store::tasks::{TaskInfo, TaskState, TrackingError};
use crate::worker::dead_letter::Reason;
use crate::worker::fetch::{QueueWorker, Source};
use crate::worker::message::{self, header, header_time};
use crate::worker::Shared;

/// What to do with a delivered message.
pub(super) enum Verdict<'a> {
    /// It cannot run, here or anywhere: dead-letter it now.
    Park(Parked<'a>),
    /// No handler here knows it yet; hand it back for another worker.
    Unknown { id: TaskId, handbacks: u64 },
    /// It will never run (cancelled or expired): remove it.
    Drop(Dropped<'a>),
    /// Run it.
    Run(Attempt<'a>),
}

/// A message to dead-letter without running it.
pub(super) struct Parked<'a> {
    /// The task name (empty when the message has none).
    pub(super) task: &'a str,
    pub(super) reason: Reason,
    pub(super) error: String,
    /// Attempts spent.
    pub(super) attempts: u64,
    /// The task's id, when it has one: its state is then recorded as dead
    /// and its hand-backs forgotten.
    pub(super) id: Option<TaskId>,
}

/// A task that will never run.
pub(super) struct Dropped<'a> {
    pub(super) id: TaskId,
    pub(super) task: &'a str,
    /// [`TaskState::Cancelled`] or [`TaskState::Expired`].
    pub(super) state: TaskState,
    pub(super) error: Option<String>,
}

/// An attempt about to run.
pub(super) struct Attempt<'a> {
    pub(super) entry: &'a TaskEntry,
    pub(super) id: TaskId,
    /// The attempt's number, from 1.
    pub(super) number: u64,
    /// Deliveries that did not spend an attempt.
    pub(super) handbacks: u64,
    pub(super) ctx: TaskContext,
    /// Its registration as running here, for cancellation.
    pub(super) running: Running<'a>,
    pub(super) timeout: Duration,
}

/// The kept state of a delivered task, read ahead: a task pulled ahead of
/// the free slots starts the read on arrival, so that it overlaps the
/// tasks before it instead of delaying this one (`reused`).
#[derive(Default)]
pub(crate) struct Lookup(Option<JoinHandle<Result<Option<TaskInfo>, TrackingError>>>);

impl Lookup {
    /// Starts reading the kept state of `msg`'s task, if its queue tracks
    /// tasks and it names one.
    pub(crate) fn start(worker: &QueueWorker, shared: &Shared, msg: &jetstream::Message) -> Lookup {
        let id = message::task_id(msg).filter(|id| worker.tracking && may_reuse(msg, *id));
        Lookup(id.map(|id| {
            let tasks = shared.client.tasks().clone();
            tokio::spawn(async move { tasks.get(id).await })
        }))
    }

    /// The kept state of task `id`: the read started ahead, or one now.
    async fn kept(self, at: Delivery<'_>, id: TaskId) -> Result<Option<TaskInfo>, TrackingError> {
        if let Some(Ok(kept)) = OptionFuture::from(self.0).await {
            return kept;
        }
        at.shared.client.tasks().get(id).await
    }
}

/// Reads the message's headers, its hand-backs and the cancellations
/// seen, and decides.
pub(super) async fn classify(at: Delivery<'_>, lookup: Lookup) -> Verdict<'_> {
    let delivered = message::delivered(at.msg);
    let (name, id) = match identify(at, delivered) {
        Ok(identified) => identified,
        Err(not_a_task) => return Verdict::Park(not_a_task),
    };
    // A message without the header is format 1 (hand-written producers).
    let format = header(at.msg, FORMAT).filter(|f| !wire::FORMATS_READ.contains(f));
    // A forged or changed message is refused before anything is read for
    // its id; one in a format this worker does not read is handed back.
    if format.is_none() {
        if let Some(refused) = unsigned(at, name, id) {
            return Verdict::Park(refused);
        }
    }
    let handbacks = async {
        if delivered > 1 {
            at.shared.handbacks.count(id, at.msg).await
        } else {
            0
        }
    };
    let reused = reused(at, lookup, name, id, delivered);
    let (handbacks, reused) = tokio::join!(handbacks, reused);
    if let Some(reused) = reused {
        return Verdict::Park(reused);
    }
    if let Some(format) = format {
        return unknown(at, name, id, Unknown::Format(format), delivered, handbacks);
    }
    let Some(entry) = at.worker.handlers.get(name) else {
        return unknown(at, name, id, Unknown::Task, delivered, handbacks);
    };
    let Some(version) = headers::payload_version(at.msg.headers.as_ref()) else {
        return Verdict::Park(Parked {
            task: name,
            reason: Reason::NotATask,
            error: format!(
                "the message's `{}` header is not a payload version (a whole number from 1); \
                 producers set it from `#[task(version = ..)]` (docs/wire-format.md)",
                wire::HEADER_VERSION
            ),
            attempts: delivered,
            id: Some(id),
        });
    };
    if version > entry.version {
        let newer = Unknown::Version {
            version,
            known: entry.version,
        };
        return unknown(at, name, id, newer, delivered, handbacks);
    }
    let number = delivered.saturating_sub(handbacks).max(1);
    let max_attempts = entry
        .retries
        .unwrap_or(at.worker.default_retries)
        .saturating_add(1);
    if number > u64::from(max_attempts) {
        // The delivery now in hand never ran: number - 1 attempts were spent.
        return Verdict::Park(Parked {
            task: entry.name,
            reason: Reason::Exhausted,
            error: format!(
                "delivered {number} times, more than its {max_attempts} attempts, without an outcome: \
                 a worker probably crashed or lost its lease while running it"
            ),
            attempts: number - 1,
            id: Some(id),
        });
    }
    let Some(running) = at.shared.cancellations.start(id) else {
        tracing::info!(task = entry.name, queue = at.worker.queue, %id, "task cancelled before it started; removing it");
        return Verdict::Drop(Dropped {
            id,
            task: entry.name,
            state: TaskState::Cancelled,
            error: None,
        });
    };
    let timeout = entry
        .timeout_ms
        .map_or(at.shared.config.default_timeout, Duration::from_millis);
    let ctx = TaskContext::new(
        id,
        entry.name,
        entry.queue,
        u32::try_from(number).unwrap_or(u32::MAX),
        max_attempts,
        message::enqueued_at(at.msg),
        timeout,
        message::context_headers(at.msg),
    )
    .with_due_at(header_time(at.msg, DUE_AT))
    .with_version(version)
    .with_cancellation(Arc::clone(&running.flag));
    if let Some(expired) = expired(at, entry, id, &ctx) {
        return Verdict::Drop(expired);
    }
    Verdict::Run(Attempt {
        entry,
        id,
        number,
        handbacks,
        ctx,
        running,
        timeout,
    })
}

/// The message's task name and id, or why it is not a task.
fn identify(at: Delivery<'_>, delivered: u64) -> Result<(&str, TaskId), Parked<'_>> {
    // A subscription's handler is chosen by the event's name.
    let (name_header, name_wire, what, doc) = match at.worker.source {
        Source::Queue => (TASK, wire::HEADER_TASK, "tasks", "docs/wire-format.md"),
        Source::Subscription(_) => (EVENT, wire::HEADER_EVENT, "events", "docs/events.md"),
    };
    let Some(name) = header(at.msg, name_header) else {
        return Err(Parked {
            task: "",
            reason: Reason::NotATask,
            error: format!(
                "the message has no `{name_wire}` header, so no handler can be chosen; publish {what} with natask's headers ({doc})",
            ),
            attempts: delivered,
            id: None,
        });
    };
    let Some(id) = message::task_id(at.msg) else {
        return Err(Parked {
            task: name,
            reason: Reason::NotATask,
            error: format!(
                "the message has no valid `{}` header (a UUID), nor a `{}` that is one; producers must set \
                 one of them (docs/wire-format.md)",
                wire::HEADER_ID,
                wire::HEADER_MSG_ID
            ),
            attempts: delivered,
            id: None,
        });
    };
    Ok((name, id))
}

/// The message, if it reuses the id of another task: a tracked task's
/// kept state names the message that carries it (its stream sequence, or
/// for a delayed task its schedule), and a message it does not name must
/// not run as that task nor replace its state. A task no worker has taken
/// yet has no kept state: the first message on its own subject is its
/// message. A state that names no message (written by an older natask)
/// cannot tell, and an unreadable one must not stop a task: the message
/// then runs.
async fn reused<'a>(
    at: Delivery<'a>,
    lookup: Lookup,
    name: &'a str,
    id: TaskId,
    delivered: u64,
) -> Option<Parked<'a>> {
    if !at.worker.tracking || !may_reuse(at.msg, id) {
        return None;
    }
    let client = &at.shared.client;
    let kept = match lookup.kept(at, id).await {
        Ok(None) => match client.waiting_in(at.worker.queue, id).await {
            // Taken and finished since the first read: a worker writes a
            // task's final state before it removes the task's message.
            Ok(None) => client.tasks().get(id).await,
            waiting => waiting,
        },
        kept => kept,
    };
    let kept = match kept {
        Ok(kept) => kept?,
        Err(e) => {
            tracing::warn!(%id, error = %e, "could not read the task's state to check its id; running it");
            return None;
        }
    };
    if names_message(&kept, at.msg, id) {
        return None;
    }
    let enqueued = kept
        .enqueued_at
        .and_then(time::rfc3339)
        .unwrap_or_else(|| "an unknown time".to_owned());
    let error = format!(
        "task id {id} already names a task enqueued at {enqueued} (`{}` on queue `{}`, {}); \
         a task id names one task, so this message did not run: enqueue it with a new id",
        kept.task, kept.queue, kept.state
    );
    tracing::warn!(queue = at.worker.queue, task = name, %id, "a message reuses the id of another task; parking it");
    Some(Parked {
        task: name,
        reason: Reason::DuplicateId,
        error,
        attempts: delivered,
        // The id is the other task's: its state and hand-backs stay.
        id: None,
    })
}

/// Why the message is refused, if this worker requires signatures and its
/// signature is missing, untrusted or does not match.
fn unsigned<'a>(at: Delivery<'a>, name: &'a str, id: TaskId) -> Option<Parked<'a>> {
    let signers = &at.shared.config.signers;
    // Events are not signed (docs/events.md).
    if signers.is_empty() || matches!(at.worker.source, Source::Subscription(_)) {
        return None;
    }
    let headers = at.msg.headers.as_ref();
    let error = signing::verify(signers, at.worker.queue, name, headers, &at.msg.payload).err()?;
    tracing::warn!(queue = at.worker.queue, task = %name, %id, %error, "task refused");
    Some(Parked {
        task: name,
        reason: Reason::Signature,
        error,
        attempts: 0,
        // Not trusted to name a task: no state is written for its id.
        id: None,
    })
}

/// Whether `msg` may reuse the id of another task, and so is checked
/// against the kept state: unless its `Nats-Msg-Id` is its task id, as
/// natask's producers publish every new task. Such a message reusing an
/// id was either deduplicated by JetStream (within the duplicate window) or
/// refused by the producer (`Client::enqueue_with` with a chosen id looks
/// the id up first), so the check's read is spent only on messages others
/// publish differently, on delayed tasks and on replays.
fn may_reuse(msg: &jetstream::Message, id: TaskId) -> bool {
    header(msg, MSG_ID).and_then(|m| m.parse::<TaskId>().ok()) != Some(id)
}

/// Whether the state `kept` of task `id` is that of the task `msg`
/// carries: the message it recorded, the copy the schedule it recorded
/// stored when due (`Nats-Scheduler`, which the server sets), or a replay
/// of that task's dead letter.
fn names_message(kept: &TaskInfo, msg: &jetstream::Message, id: TaskId) -> bool {
    // `<id>:replay:<n>`, as `DeadLetters::replay` publishes it
    let replay = || {
        header(msg, MSG_ID)
            .and_then(|m| m.split_once(":replay:"))
            .is_some_and(|(of, _)| of.parse().ok() == Some(id))
    };
    match kept.seq {
        Some(seq) if Some(seq) == message::stream_sequence(msg) => true,
        _ if replay() => true,
        Some(_) => false,
        // The copy a delayed task's schedule stored when due names it.
        None if kept.delayed_subject.is_some() => {
            header(msg, NATS_SCHEDULER) == kept.delayed_subject.as_deref()
        }
        None => true,
    }
}

/// What this worker does not know about a task.
#[derive(Clone, Copy)]
enum Unknown<'a> {
    /// Its name: no handler here.
    Task,
    /// Its wire format (`Natask-Format`), e.g. from a newer producer.
    Format(&'a str),
    /// Its payload version (`Natask-Version`), newer than the handler's.
    Version { version: u32, known: u32 },
}

/// A task this worker cannot run (no handler, or a wire format it does
/// not read): handed back during the grace a rolling deploy needs (a
/// newer worker may know it), then dead-lettered. It never guesses.
fn unknown<'a>(
    at: Delivery<'a>,
    name: &'a str,
    id: TaskId,
    what: Unknown<'a>,
    delivered: u64,
    handbacks: u64,
) -> Verdict<'a> {
    let queue = at.worker.queue;
    if delivered < u64::from(at.shared.config.unknown_task_deliveries) {
        match what {
            Unknown::Task => {
                tracing::warn!(queue, task = %name, %id, delivered, "no handler for this task here; handing it back for another worker")
            }
            Unknown::Format(format) => {
                tracing::warn!(queue, task = %name, %id, delivered, format, "this worker does not read the task's wire format; handing it back for another worker")
            }
            Unknown::Version { version, known } => {
                tracing::warn!(queue, task = %name, %id, delivered, version, known, "the task's payload is newer than this worker's handler; handing it back for another worker")
            }
        }
        return Verdict::Unknown { id, handbacks };
    }
    let (reason, error) = match what {
        Unknown::Task => {
            let mut known: Vec<_> = at.worker.handlers.keys().copied().collect();
            known.sort_unstable();
            let known: Vec<_> = known.iter().map(|k| format!("`{k}`")).collect();
            let error = format!(
                "no handler for task `{name}` on queue `{queue}` after {delivered} deliveries (this worker knows {}); \
                 deploy a worker that registers it, then replay the dead letter",
                known.join(", ")
            );
            (Reason::UnknownTask, error)
        }
        Unknown::Format(format) => {
            let error = format!(
                "task `{name}` on queue `{queue}` is in wire format `{format}`, which no worker read after \
                 {delivered} deliveries (this one reads formats {}); deploy a worker that reads it, then \
                 replay the dead letter",
                wire::FORMATS_READ.join(" and ")
            );
            (Reason::UnknownFormat, error)
        }
        Unknown::Version { version, known } => {
            let error = format!(
                "task `{name}` on queue `{queue}` has a payload of version {version}, newer than the \
                 version {known} this worker's handler reads, and no worker took it after {delivered} \
                 deliveries; deploy the worker that reads it, then replay the dead letter"
            );
            (Reason::UnknownVersion, error)
        }
    };
    Verdict::Park(Parked {
        task: name,
        reason,
        error,
        attempts: delivered - handbacks,
        id: Some(id),
    })
}

/// The task, if it was not started within its queue's validity.
fn expired<'a>(
    at: Delivery<'a>,
    entry: &'a TaskEntry,
    id: TaskId,
    ctx: &TaskContext,
) -> Option<Dropped<'a>> {
    let validity = at.worker.validity?;
    let since = ctx.due_at().or(ctx.enqueued_at())?;
    let late = since.elapsed().ok().filter(|late| *late > validity)?;
    let error = format!(
        "not started within the queue's validity of {validity:?} (it became due {late:?} ago); it will not run"
    );
    tracing::warn!(task = entry.name, queue = at.worker.queue, %id, "{error}");
    Some(Dropped {
        id,
        task: entry.name,
        state: TaskState::Expired,
        error: Some(error),
    })
}
