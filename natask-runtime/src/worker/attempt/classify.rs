//! What a delivered message is, decided before anything runs.

use std::sync::Arc;
use std::time::Duration;

use natask_core::wire;
use natask_core::{TaskContext, TaskEntry, TaskId};

use super::Delivery;
use crate::jetstream::headers::{DUE_AT, ENQUEUED_AT, FORMAT, TASK};
use crate::signing;
use crate::store::cancellations::Running;
use crate::store::tasks::TaskState;
use crate::worker::dead_letter::Reason;
use crate::worker::message::{self, header, header_time};

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

/// Reads the message's headers, its hand-backs and the cancellations
/// seen, and decides.
pub(super) async fn classify(at: Delivery<'_>) -> Verdict<'_> {
    let delivered = message::delivered(at.msg);
    let (name, id) = match identify(at, delivered) {
        Ok(identified) => identified,
        Err(not_a_task) => return Verdict::Park(not_a_task),
    };
    let handbacks = if delivered > 1 {
        at.shared.handbacks.count(id).await
    } else {
        0
    };
    // A message without the header is format 1 (hand-written producers).
    if let Some(format) = header(at.msg, FORMAT).filter(|f| *f != wire::FORMAT_VERSION) {
        return unknown(at, name, id, Unknown::Format(format), delivered, handbacks);
    }
    let signers = &at.shared.config.signers;
    if !signers.is_empty() {
        let body = &at.msg.payload;
        if let Err(error) = signing::verify(
            signers,
            at.worker.queue,
            name,
            at.msg.headers.as_ref(),
            body,
        ) {
            tracing::warn!(queue = at.worker.queue, task = %name, %id, %error, "task refused");
            // Not trusted to name a task: no state is written for its id.
            return Verdict::Park(Parked {
                task: name,
                reason: Reason::Signature,
                error,
                attempts: 0,
                id: None,
            });
        }
    }
    let Some(entry) = at.worker.handlers.get(name) else {
        return unknown(at, name, id, Unknown::Task, delivered, handbacks);
    };
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
        header_time(at.msg, ENQUEUED_AT),
        timeout,
        message::context_headers(at.msg),
    )
    .with_due_at(header_time(at.msg, DUE_AT))
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
    let Some(name) = header(at.msg, TASK) else {
        return Err(Parked {
            task: "",
            reason: Reason::NotATask,
            error: format!(
                "the message has no `{}` header, so no handler can be chosen; publish tasks with natask's headers (docs/wire-format.md)",
                wire::HEADER_TASK
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
                "the message has no valid `{}` header (a UUID); producers must set it (docs/wire-format.md)",
                wire::HEADER_ID
            ),
            attempts: delivered,
            id: None,
        });
    };
    Ok((name, id))
}

/// What this worker does not know about a task.
#[derive(Clone, Copy)]
enum Unknown<'a> {
    /// Its name: no handler here.
    Task,
    /// Its wire format (`Natask-Format`), e.g. from a newer producer.
    Format(&'a str),
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
                 {delivered} deliveries (this one reads format {}); deploy a worker that reads it, then \
                 replay the dead letter",
                wire::FORMAT_VERSION
            );
            (Reason::UnknownFormat, error)
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
