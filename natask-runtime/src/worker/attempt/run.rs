//! Running an attempt: its start recorded, the handler run through the
//! middleware, the lease renewed while it runs, the timeout, panics,
//! cancellation and a shutdown's hand-back.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::AckKind;
use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use natask_core::{Invocation, TaskError};

use super::classify::Attempt;
use super::settle::state_of;
use super::Delivery;
use crate::jetstream::confirm;
use crate::middleware::Next;
use crate::store::tasks::TaskState;

/// How long a handler runs before its `running` state is written: a
/// task that ends sooner goes from `queued` straight to its final state,
/// one state write instead of two (see `docs/guarantees.md`).
pub(crate) const RUNNING_STATE_AFTER: Duration = Duration::from_millis(250);

/// How an attempt ended.
pub(super) enum Outcome {
    /// The handler returned (its `Ok` value as JSON, or its error).
    Finished(Result<Vec<u8>, TaskError>),
    /// The shutdown grace ran out first.
    HandedBack,
    /// [`Client::cancel`](crate::Client::cancel) stopped it.
    Cancelled,
    /// The handler finished, but no lease renewal was confirmed for longer
    /// than the ack wait: JetStream has given the task to another worker,
    /// which now owns its outcome.
    LeaseLost,
}

/// An attempt that ran.
pub(super) struct Ran {
    pub(super) started_at: SystemTime,
    pub(super) outcome: Outcome,
    /// When the task's lease runs out; the outcome is recorded by then.
    pub(super) lease_end: Instant,
}

/// Releases a lock held until the task starts, and runs the handler
/// (recording its start if it runs longer than [`RUNNING_STATE_AFTER`]).
pub(super) async fn run(
    at: Delivery<'_>,
    attempt: &Attempt<'_>,
    hand_back: &CancellationToken,
) -> Ran {
    let started_at = SystemTime::now();
    Box::pin(
        at.shared
            .client
            .locks()
            .started(at.msg.headers.as_ref(), attempt.id),
    )
    .await;
    let (outcome, lease_end) = handler(at, attempt, hand_back, started_at).await;
    Ran {
        started_at,
        outcome,
        lease_end,
    }
}

/// Records that the attempt runs. A retry carries the previous attempt's
/// error along; the state is sent without waiting for the answer.
async fn running(at: Delivery<'_>, attempt: &Attempt<'_>, started_at: SystemTime) {
    let tasks = at.shared.client.tasks();
    let mut info = state_of(at, &attempt.ctx, TaskState::Running);
    info.started_at = Some(started_at);
    if attempt.ctx.attempt() > 1 || attempt.handbacks > 0 {
        if let Ok(Some(before)) = tasks.get(attempt.id).await {
            info.last_error = before.last_error;
        }
    }
    tasks.send(&info).await;
}

/// Runs the handler through the middleware, renewing the lease while it
/// runs and recording its start once it has run for
/// [`RUNNING_STATE_AFTER`], until it returns, times out, is cancelled or
/// handed back; the outcome, and when the lease runs out.
async fn handler(
    at: Delivery<'_>,
    attempt: &Attempt<'_>,
    hand_back: &CancellationToken,
    started_at: SystemTime,
) -> (Outcome, Instant) {
    let ctx = &attempt.ctx;
    let invocation = Invocation {
        payload: &at.msg.payload,
        context: ctx,
        states: &at.shared.states,
    };
    let chain = Next {
        rest: &at.shared.middleware,
        ctx,
        inner: (attempt.entry.handler)(invocation),
    };
    let handler = AssertUnwindSafe(chain.run()).catch_unwind();
    tokio::pin!(handler);
    // One timer serves the running state, the lease renewals and the
    // timeout. Renewing three times per ack wait survives one lost renewal;
    // renewal stops with the timeout, so a hung handler cannot hold a task
    // forever.
    let ack_wait = at.worker.settings.ack_wait;
    let started = Instant::now();
    let deadline = started + attempt.timeout;
    let period = ack_wait / 3;
    let mut next_renewal = started + period;
    let mut running_due = at.worker.tracking.then_some(started + RUNNING_STATE_AFTER);
    let next_wake = |renewal: Instant, running: Option<Instant>| {
        running.map_or(renewal, |r| r.min(renewal)).min(deadline)
    };
    let timer = tokio::time::sleep_until(next_wake(next_renewal, running_due));
    tokio::pin!(timer);
    // The lease runs from the delivery; each renewal the server confirms
    // extends it by the ack wait.
    let mut lease = Lease {
        since: at.received,
        ack_wait,
    };
    let outcome = loop {
        tokio::select! {
            // The handler first: one that finishes on its first poll then
            // never registers the timer or the shutdown waiter.
            biased;
            result = &mut handler => {
                let result = result.unwrap_or_else(|panic| Err(TaskError::panic(panic_message(&*panic))));
                break lease.outcome(result);
            }
            () = &mut timer => {
                let now = Instant::now();
                if now >= deadline {
                    break lease.outcome(Err(TaskError::timeout(attempt.timeout)));
                }
                if running_due.is_some_and(|due| now >= due) {
                    running_due = None;
                    Box::pin(running(at, attempt, started_at)).await;
                }
                if now >= next_renewal {
                    lease.renew(at, now, period).await;
                    next_renewal += period;
                }
                timer.as_mut().reset(next_wake(next_renewal, running_due));
            }
            () = hand_back.cancelled() => break Outcome::HandedBack,
            () = attempt.running.token.cancelled() => break Outcome::Cancelled,
        }
    };
    (outcome, lease.since + ack_wait)
}

/// The task's lease: since when it is known to hold.
struct Lease {
    since: Instant,
    ack_wait: Duration,
}

impl Lease {
    /// Asks the server to extend the lease, at `now`, until it confirms
    /// or the next renewal is due.
    async fn renew(&mut self, at: Delivery<'_>, now: Instant, period: Duration) {
        // Boxed: the renewal is rare, and inline it would double the size
        // of every spawned attempt.
        let renewal = Box::pin(async {
            let (nats, reply) = confirm::ack_subject(at.msg)?;
            confirm::ack(&nats, reply, AckKind::Progress, now + period).await
        });
        match renewal.await {
            Ok(()) => self.since = now,
            Err(e) => tracing::warn!(error = %e, "could not renew the task's lease"),
        }
    }

    /// The outcome of a handler that returned `result`, unless the lease
    /// ran out meanwhile.
    fn outcome(&self, result: Result<Vec<u8>, TaskError>) -> Outcome {
        if self.since.elapsed() > self.ack_wait {
            Outcome::LeaseLost
        } else {
            Outcome::Finished(result)
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&7_u8), "a non-string panic payload");
    }
}
