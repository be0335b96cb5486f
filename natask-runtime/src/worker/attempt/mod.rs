//! One delivery of a task is one attempt, in three steps: `classify`
//! decides what the message is before anything runs (not a task, unknown
//! here, out of attempts, cancelled, expired, or to run), `run` runs the
//! handler under its lease and timeout, and `settle` records the outcome:
//! the ack or nak, the dead letter, the task's state and its unique lock.

use std::sync::Arc;

use async_nats::jetstream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::fetch::{Ahead, QueueWorker, Slot};
use super::Shared;

mod classify;
mod run;
mod settle;

pub(super) use classify::Lookup;
use classify::Verdict;
#[cfg(feature = "testing")]
pub(crate) use run::panic_message;
#[cfg(feature = "testing")]
pub(crate) use settle::{next_step, NextStep};

/// One delivered message and what it is handled with.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    worker: &'a QueueWorker,
    shared: &'a Shared,
    msg: &'a jetstream::Message,
    /// When the message arrived.
    received: Instant,
}

impl Delivery<'_> {
    /// When the lease that came with the delivery runs out (unless the
    /// handler renews it): JetStream then delivers the task again.
    fn lease_end(&self) -> Instant {
        self.received + self.worker.settings.ack_wait
    }
}

/// Handles one delivered message, whose lease holds since `leased` (its
/// arrival, or its last renewal while it was pulled ahead), in the handler
/// slot `_slot`, which is freed when this returns.
pub(super) async fn attempt(
    worker: Arc<QueueWorker>,
    shared: Arc<Shared>,
    task: Ahead,
    hand_back: CancellationToken,
    _slot: Slot,
) {
    let Ahead {
        msg,
        leased,
        lookup,
    } = task;
    let delivery = Delivery {
        worker: &worker,
        shared: &shared,
        msg: &msg,
        received: leased,
    };
    // Boxed: each step is large, and the common path through them would
    // otherwise grow every spawned attempt.
    match Box::pin(classify::classify(delivery, lookup)).await {
        Verdict::Park(parked) => Box::pin(settle::parked(delivery, parked)).await,
        Verdict::Unknown { id, handbacks } => {
            Box::pin(settle::unknown(delivery, id, handbacks)).await;
        }
        Verdict::Drop(dropped) => Box::pin(settle::dropped(delivery, dropped)).await,
        Verdict::Run(attempt) => {
            let ran = run::run(delivery, &attempt, &hand_back).await;
            Box::pin(settle::settle(delivery, &attempt, ran)).await;
        }
    };
}
