//! Recording what became of a delivery: the ack or nak JetStream needs,
//! the dead letter, the task's state, its hand-backs and its unique lock.
//!
//! A final state is recorded before the ack, in the handler's slot, and
//! sent again while the bucket does not answer (`store::tasks`). The ack
//! that removes a task for good is confirmed on a replicated consumer
//! (`jetstream::confirm`): lost in a leader election, it would run the
//! task again one ack wait later. It is tried again while the task's
//! lease lasts, beside the handler slots, so that a server which does not
//! answer (measured: a single server restarted after SIGKILL, for the
//! acks sent around the kill) does not stop the worker. A consumer
//! without replicas gets a plain ack: its leader cannot change, and the
//! answer costs a fifth of the throughput of short tasks (measured with
//! `scripts/bench process`). A nak is sent once: lost, it brings the task
//! back one ack wait later instead of after its delay, which runs nothing
//! twice.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::AckKind;
use tokio::time::Instant;

use natask_core::{Backoff, TaskContext, TaskError, TaskErrorKind, TaskId};

use super::classify::{Attempt, Dropped, Parked};
use super::run::{Outcome, Ran};
use super::Delivery;
use crate::jetstream::confirm;
use crate::store::tasks::{TaskInfo, TaskState};
use crate::worker::dead_letter::{self, Parking, Reason};
use crate::worker::message;

/// The state of the attempt `ctx` describes, of the message `at` holds.
pub(super) fn state_of(at: Delivery<'_>, ctx: &TaskContext, state: TaskState) -> TaskInfo {
    let mut info = TaskInfo::new(ctx.id(), ctx.task_name(), ctx.queue(), state);
    info.seq = message::stream_sequence(at.msg);
    info.attempts = ctx.attempt();
    info.enqueued_at = ctx.enqueued_at();
    info.due_at = ctx.due_at();
    info
}

/// Records a terminal state: sent now (before the ack that follows), its
/// answer awaited beside the handler slots.
async fn finish(at: Delivery<'_>, mut info: TaskInfo, error: Option<String>) {
    info.finished_at = Some(SystemTime::now());
    info.last_error = error;
    if let Some(answered) = at.shared.client.tasks().send_final(info).await {
        at.shared.confirming.spawn(answered);
    }
}

/// Removes the task for good. A replicated consumer's ack is sent now
/// and confirmed beside the handler slots, tried again until `deadline`;
/// any other is sent once.
async fn ack(at: Delivery<'_>, deadline: Instant, id: TaskId) {
    let queue = at.worker.queue;
    if !at.worker.replicated {
        if let Err(e) = at.msg.ack().await {
            tracing::warn!(queue, %id, error = %e, "the ack was not sent; the task will run again");
        }
        return;
    }
    let (nats, reply) = match confirm::ack_subject(at.msg) {
        Ok(sent_on) => sent_on,
        Err(e) => {
            tracing::warn!(queue, %id, error = %e, "cannot ack the task");
            return;
        }
    };
    at.shared.confirming.spawn(async move {
        match confirm::ack(&nats, reply, AckKind::Ack, deadline).await {
            Ok(()) => tracing::trace!(queue, %id, "ack confirmed"),
            Err(e) => tracing::warn!(queue, %id, error = %e, "the server did not confirm the ack; the task may run again"),
        }
    });
}

/// Dead-letters a message that could not run.
pub(super) async fn parked(at: Delivery<'_>, parked: Parked<'_>) {
    let queue = at.worker.queue;
    let parking = Parking {
        queue,
        task: parked.task,
        reason: parked.reason,
        error: &parked.error,
        attempts: parked.attempts,
    };
    dead_letter::park(&at.shared.client, at.msg, &parking).await;
    let Some(id) = parked.id else { return };
    if at.worker.tracking {
        let mut info = TaskInfo::new(id, parked.task, queue, TaskState::Dead);
        info.seq = message::stream_sequence(at.msg);
        info.attempts = u32::try_from(parked.attempts).unwrap_or(u32::MAX);
        finish(at, info, Some(parked.error)).await;
    }
    at.shared.handbacks.clear(id, at.msg).await;
}

/// Hands a task no handler here knows back for another worker.
pub(super) async fn unknown(at: Delivery<'_>, id: TaskId, handbacks: u64) {
    at.shared.handbacks.record(id, at.msg, handbacks).await;
    let delay = at.shared.config.unknown_task_delay;
    let _ = at.msg.ack_with(AckKind::Nak(Some(delay))).await;
}

/// Removes a task that will never run (cancelled or expired) from its
/// queue, recording why.
pub(super) async fn dropped(at: Delivery<'_>, dropped: Dropped<'_>) {
    let Dropped {
        id,
        task,
        state,
        error,
    } = dropped;
    let queue = at.worker.queue;
    #[cfg(feature = "metrics")]
    crate::metrics::ended_unrun(queue, task, state);
    if at.worker.tracking {
        let mut info = TaskInfo::new(id, task, queue, state);
        info.seq = message::stream_sequence(at.msg);
        info.enqueued_at = message::enqueued_at(at.msg);
        finish(at, info, error).await;
    }
    // Not removed, it is delivered again and dropped then.
    ack(at, at.lease_end(), id).await;
    at.shared.handbacks.clear(id, at.msg).await;
    let headers = at.msg.headers.as_ref();
    at.shared.client.locks().abandoned(headers, id).await;
}

/// Settles an attempt that ran. Settlement happens after the handler's
/// span closed; its logs carry the same fields.
pub(super) async fn settle(at: Delivery<'_>, attempt: &Attempt<'_>, ran: Ran) {
    let Ran {
        started_at,
        outcome,
        lease_end,
    } = ran;
    let settling = Settling {
        at,
        attempt,
        started_at,
        lease_end,
    };
    let succeeded = matches!(outcome, Outcome::Finished(Ok(_)));
    let for_good = match outcome {
        Outcome::LeaseLost => settling.lease_lost(),
        Outcome::HandedBack => settling.handed_back().await,
        Outcome::Cancelled => settling.cancelled().await,
        Outcome::Finished(Ok(output)) => settling.succeeded(output).await,
        Outcome::Finished(Err(error)) => settling.failed(error).await,
    };
    let id = attempt.id;
    if for_good && attempt.handbacks > 0 {
        Box::pin(at.shared.handbacks.clear(id, at.msg)).await;
    }
    let headers = at.msg.headers.as_ref();
    let locks = at.shared.client.locks();
    Box::pin(locks.settled(headers, id, succeeded, for_good)).await;
}

/// One attempt being settled. Each outcome answers whether the task is
/// settled for good (succeeded, dead or cancelled) or comes back.
struct Settling<'a> {
    at: Delivery<'a>,
    attempt: &'a Attempt<'a>,
    started_at: SystemTime,
    /// What must be confirmed is tried again until then.
    lease_end: Instant,
}

impl Settling<'_> {
    /// The state to record, if the queue tracks tasks.
    fn track(&self, state: TaskState) -> Option<TaskInfo> {
        self.at.worker.tracking.then(|| {
            let mut info = state_of(self.at, &self.attempt.ctx, state);
            info.started_at = Some(self.started_at);
            info
        })
    }

    fn lease_lost(&self) -> bool {
        let (task, queue, id, attempt) = self.fields();
        tracing::warn!(
            task, queue, %id, attempt,
            "the handler finished after its lease ran out; the task was redelivered and \
             its outcome is left to the worker that holds it now"
        );
        false
    }

    async fn handed_back(&self) -> bool {
        let (task, queue, id, attempt) = self.fields();
        tracing::info!(
            task, queue, %id, attempt,
            "shutdown grace over; task handed back to the queue without spending an attempt"
        );
        let shared = self.at.shared;
        Box::pin(
            shared
                .handbacks
                .record(id, self.at.msg, self.attempt.handbacks),
        )
        .await;
        if let Some(mut info) = self.track(TaskState::Queued) {
            info.attempts -= 1;
            Box::pin(shared.client.tasks().record(&info)).await;
        }
        let _ = Box::pin(self.at.msg.ack_with(AckKind::Nak(None))).await;
        false
    }

    async fn cancelled(&self) -> bool {
        let (task, queue, id, attempt) = self.fields();
        tracing::info!(task, queue, %id, attempt, "task cancelled while it ran; its handler was stopped");
        #[cfg(feature = "metrics")]
        crate::metrics::ended_unrun(queue, task, TaskState::Cancelled);
        if let Some(info) = self.track(TaskState::Cancelled) {
            Box::pin(finish(self.at, info, None)).await;
        }
        Box::pin(ack(self.at, self.lease_end, id)).await;
        true
    }

    async fn succeeded(&self, output: Vec<u8>) -> bool {
        if let Some(mut info) = self.track(TaskState::Succeeded) {
            info.result = serde_json::from_slice(&output).ok();
            Box::pin(finish(self.at, info, None)).await;
        }
        let (task, queue, id, attempt) = self.fields();
        Box::pin(ack(self.at, self.lease_end, id)).await;
        tracing::debug!(task, queue, %id, attempt, "task succeeded");
        true
    }

    async fn failed(&self, error: TaskError) -> bool {
        let text = error.to_string();
        let backoff = self
            .attempt
            .entry
            .backoff
            .unwrap_or(self.at.shared.config.default_backoff);
        match next_step(error.kind(), &self.attempt.ctx, backoff) {
            NextStep::Snooze(delay) => self.snoozed(delay).await,
            NextStep::Dead(reason) => self.dead(reason, text).await,
            NextStep::Retry(delay) => self.retried(text, delay).await,
        }
    }

    async fn snoozed(&self, delay: Duration) -> bool {
        let (task, queue, id, attempt) = self.fields();
        tracing::info!(
            task, queue, %id, attempt,
            ?delay,
            "task snoozed; it runs again without spending an attempt"
        );
        let shared = self.at.shared;
        Box::pin(
            shared
                .handbacks
                .record(id, self.at.msg, self.attempt.handbacks),
        )
        .await;
        if let Some(info) = self.track(TaskState::Queued) {
            Box::pin(shared.client.tasks().record(&info)).await;
        }
        let _ = Box::pin(self.at.msg.ack_with(AckKind::Nak(Some(delay)))).await;
        false
    }

    async fn dead(&self, reason: Reason, error: String) -> bool {
        let (task, queue, id, attempt) = self.fields();
        if reason == Reason::Exhausted {
            tracing::warn!(task, queue, %id, attempt, error = %error, "task failed on its last attempt");
        } else {
            tracing::warn!(task, queue, %id, attempt, error = %error, "task cannot succeed; no retry");
        }
        let parking = Parking {
            queue,
            task,
            reason,
            error: &error,
            attempts: attempt,
        };
        Box::pin(dead_letter::park(
            &self.at.shared.client,
            self.at.msg,
            &parking,
        ))
        .await;
        if let Some(info) = self.track(TaskState::Dead) {
            Box::pin(finish(self.at, info, Some(error))).await;
        }
        true
    }

    async fn retried(&self, error: String, delay: Duration) -> bool {
        let (task, queue, id, attempt) = self.fields();
        tracing::warn!(task, queue, %id, attempt, error = %error, retry_in = ?delay, "task failed; will retry");
        #[cfg(feature = "metrics")]
        crate::metrics::retried(queue, task);
        if let Some(mut info) = self.track(TaskState::Retrying) {
            info.last_error = Some(error);
            Box::pin(self.at.shared.client.tasks().record(&info)).await;
        }
        let _ = Box::pin(self.at.msg.ack_with(AckKind::Nak(Some(delay)))).await;
        false
    }

    /// The fields every log line of the attempt carries.
    fn fields(&self) -> (&'static str, &'static str, TaskId, u64) {
        (
            self.attempt.entry.name,
            self.at.worker.queue,
            self.attempt.id,
            self.attempt.number,
        )
    }
}

/// What becomes of a task whose attempt `ctx` failed with an error of
/// `kind`: the worker's decision, without its effects, so that
/// `testing::perform` reports exactly what a worker would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NextStep {
    /// Delivered again after this long, without spending an attempt.
    Snooze(Duration),
    /// Dead-lettered, for this reason.
    Dead(Reason),
    /// Delivered again after this long (the backoff), as the next attempt.
    Retry(Duration),
}

/// Decides what follows a failed attempt; `backoff` is the task's (or the
/// runtime's default), and the retry delay is seeded by the task id, so
/// that one task's delays are the same wherever it runs.
pub(crate) fn next_step(kind: TaskErrorKind, ctx: &TaskContext, backoff: Backoff) -> NextStep {
    match kind {
        TaskErrorKind::Snooze(delay) => NextStep::Snooze(delay),
        TaskErrorKind::Fatal => NextStep::Dead(Reason::Fatal),
        TaskErrorKind::Decode => NextStep::Dead(Reason::Decode),
        _ if ctx.is_last_attempt() => NextStep::Dead(Reason::Exhausted),
        _ => {
            let seed = ctx.id().as_uuid().as_u128() as u64;
            NextStep::Retry(backoff.delay(ctx.attempt(), seed))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use natask_core::Headers;

    use super::*;

    fn ctx(attempt: u32, max_attempts: u32) -> TaskContext {
        let timeout = Duration::from_secs(1);
        let (id, headers) = (TaskId::new(), Headers::new());
        TaskContext::new(id, "t", "q", attempt, max_attempts, None, timeout, headers)
    }

    #[test]
    fn a_failed_attempt_is_retried_until_the_last() {
        let fixed = Backoff::fixed(Duration::from_secs(3));
        let retry = NextStep::Retry(Duration::from_secs(3));
        assert_eq!(next_step(TaskErrorKind::Retry, &ctx(1, 3), fixed), retry);
        assert_eq!(next_step(TaskErrorKind::Panic, &ctx(2, 3), fixed), retry);
        let dead = NextStep::Dead(Reason::Exhausted);
        assert_eq!(next_step(TaskErrorKind::Timeout, &ctx(3, 3), fixed), dead);
    }

    #[test]
    fn fatal_decode_and_snooze_ignore_the_attempts_left() {
        let backoff = Backoff::DEFAULT;
        let first = ctx(1, 5);
        let snooze = TaskErrorKind::Snooze(Duration::from_secs(9));
        assert_eq!(
            next_step(snooze, &ctx(5, 5), backoff),
            NextStep::Snooze(Duration::from_secs(9))
        );
        let fatal = next_step(TaskErrorKind::Fatal, &first, backoff);
        assert_eq!(fatal, NextStep::Dead(Reason::Fatal));
        let decode = next_step(TaskErrorKind::Decode, &first, backoff);
        assert_eq!(decode, NextStep::Dead(Reason::Decode));
    }
}
