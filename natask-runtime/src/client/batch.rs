//! Enqueueing many tasks at once, with many publishes in flight.

use std::collections::VecDeque;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use tokio::time::Instant;
use tracing::Instrument;

use natask_core::{Task, TaskId};

use super::enqueue::{initial_state, publish_error, EnqueueError, Stored};
use super::options::Enqueued;
use super::Client;
use crate::jetstream::publish::{ack_wait, is_transient, maybe_stored};
use crate::store::tasks::TaskState;

/// Enqueues whose acknowledgement `enqueue_many` awaits at once. JetStream
/// acknowledges a stream's publishes in order; more than this gains little
/// on loopback and only queues up in the server.
const IN_FLIGHT: usize = 256;

impl Client {
    /// Enqueues every task of `tasks` with up to 256 publishes in flight,
    /// instead of waiting for each acknowledgement in turn, and returns one
    /// result per task, in order: its id once JetStream has stored it, or
    /// why it was not.
    ///
    /// Each task gets what [`enqueue`](Client::enqueue) gives it (the same
    /// headers, middleware, checks, and the client's timeout counted from
    /// its own publish) and succeeds or fails on its own: a failed task does
    /// not stop the others. The whole call runs in one `enqueue_many` span. For bulk work this is many
    /// times faster than awaiting `enqueue` in a loop (see `BENCHMARKS.md`).
    /// While NATS is unreachable every task fails with
    /// [`EnqueueError::Timeout`] after the client's timeout, 256 at a time.
    /// Tasks declared unique (`#[task(unique = "..")]`) are enqueued one
    /// after the other, each as [`enqueue`](Client::enqueue) does.
    ///
    /// ```no_run
    /// use natask_runtime::{task, Client, TaskError};
    ///
    /// #[task(queue = "thumbnails")]
    /// async fn thumbnail(image: u64) -> Result<(), TaskError> {
    ///     Ok(())
    /// }
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::connect("nats://127.0.0.1:4222").await?;
    /// let results = client.enqueue_many((0..10_000).map(Thumbnail::new)).await;
    /// for (image, result) in results.iter().enumerate() {
    ///     match result {
    ///         Ok(enqueued) => println!("image {image} is task {}", enqueued.id),
    ///         Err(e) => eprintln!("image {image} was not enqueued: {e}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Vec<Result<Enqueued, EnqueueError>> {
        let tasks = tasks.into_iter();
        #[cfg(feature = "testing")]
        if self.recorder().is_some() {
            return stream::iter(tasks)
                .then(|task| async move { self.enqueue(&task).await })
                .collect()
                .await;
        }
        let span = tracing::info_span!("enqueue_many", task = T::NAME, queue = T::QUEUE);
        let subject = match self.subject_of::<T>().instrument(span.clone()).await {
            // A unique task takes its lock before its publish: one at a time.
            Ok(_) if T::UNIQUE.is_some() => {
                return stream::iter(tasks)
                    .then(|task| async move { self.enqueue(&task).await })
                    .collect()
                    .instrument(span)
                    .await
            }
            Ok(subject) => subject,
            // Each task then tries (and fails) on its own, with its own error.
            Err(_) => {
                return stream::iter(tasks)
                    .then(|task| async move { self.enqueue(&task).await })
                    .collect()
                    .await
            }
        };
        self.pipeline(tasks, subject).instrument(span).await
    }

    /// Publishes every task with up to [`IN_FLIGHT`] acknowledgements
    /// outstanding, settling them oldest first, as a hand-written
    /// async-nats producer would.
    async fn pipeline<T: Task>(
        &self,
        tasks: impl Iterator<Item = T>,
        subject: Subject,
    ) -> Vec<Result<Enqueued, EnqueueError>> {
        let timeout = self.timeout();
        let mut results: Vec<Option<Result<Settled, EnqueueError>>> =
            Vec::with_capacity(tasks.size_hint().0);
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(IN_FLIGHT);
        for task in tasks {
            let index = results.len();
            results.push(None);
            let id = TaskId::new();
            let (headers, payload) = match self.prepare(&task, id, |_| {}) {
                Ok(prepared) => prepared,
                Err(e) => {
                    results[index] = Some(Err(e));
                    continue;
                }
            };
            if in_flight.len() == IN_FLIGHT {
                let oldest = in_flight.pop_front().expect("in flight is full");
                let at = oldest.index;
                results[at] = Some(self.settle::<T>(oldest).await);
            }
            let deadline = Instant::now() + timeout;
            let payload = Bytes::from(payload);
            let subject = self.task_subject::<T>(&subject, id);
            let publish = self.jetstream().publish_with_headers(
                subject.clone(),
                headers.clone(),
                payload.clone(),
            );
            match tokio::time::timeout_at(deadline, publish).await {
                Ok(Ok(ack)) => in_flight.push_back(InFlight {
                    index,
                    id,
                    deadline,
                    ack,
                    message: (subject, headers, payload),
                }),
                Ok(Err(e)) => results[index] = Some(Err(publish_error::<T>(e.into()))),
                Err(_) => results[index] = Some(Err(self.timed_out::<T>(id))),
            }
        }
        while let Some(oldest) = in_flight.pop_front() {
            let at = oldest.index;
            results[at] = Some(self.settle::<T>(oldest).await);
        }
        let results: Vec<_> = results
            .into_iter()
            .map(|r| r.expect("every task is settled"))
            .collect();
        if self.tracks_queued(T::QUEUE) {
            self.record_initial_states::<T>(&results).await;
        }
        results
            .into_iter()
            .map(|r| {
                r.map(|s| Enqueued {
                    id: s.id,
                    created: !s.stored.duplicate,
                })
            })
            .collect()
    }

    /// Records the `queued` state of every stored task, with up to
    /// [`IN_FLIGHT`] writes outstanding.
    async fn record_initial_states<T: Task>(&self, stored: &[Result<Settled, EnqueueError>]) {
        let mut in_flight = VecDeque::with_capacity(IN_FLIGHT);
        let mut failed = 0usize;
        for settled in stored.iter().flatten().filter(|s| !s.stored.duplicate) {
            let (id, seq) = (settled.id, settled.stored.sequence);
            if in_flight.len() == IN_FLIGHT {
                let oldest: PublishAckFuture = in_flight.pop_front().expect("in flight is full");
                failed += usize::from(oldest.await.is_err());
            }
            match self
                .tasks()
                .create(&initial_state::<T>(id, TaskState::Queued, Some(seq)))
                .await
            {
                Ok(ack) => in_flight.push_back(ack),
                Err(_) => failed += 1,
            }
        }
        for ack in in_flight {
            failed += usize::from(ack.await.is_err());
        }
        if failed > 0 {
            // Mostly a worker that recorded the task first; see `TaskStore::record_new`.
            tracing::debug!(failed, "some enqueued tasks' states were not recorded");
        }
    }

    /// Waits for the acknowledgement of `task`; while none comes (a leader
    /// election, a lost answer) sends it again as `enqueue` does, within
    /// what is left of its timeout.
    async fn settle<T: Task>(&self, task: InFlight) -> Result<Settled, EnqueueError> {
        let InFlight {
            id,
            deadline,
            ack,
            message: (subject, headers, payload),
            ..
        } = task;
        let first_wait = deadline.min(Instant::now() + ack_wait(self.jetstream()));
        let unanswered = match tokio::time::timeout_at(first_wait, ack).await {
            Ok(Ok(ack)) => {
                return Ok(Settled {
                    id,
                    stored: Stored::of::<T>(&ack),
                })
            }
            Ok(Err(e)) if is_transient(&e) => maybe_stored(&e),
            Ok(Err(e)) => return Err(publish_error::<T>(e.into())),
            Err(_) => true,
        };
        let resent = self.send_until_answered::<T>(subject, headers, payload, unanswered);
        match tokio::time::timeout_at(deadline, resent).await {
            Ok(stored) => stored.map(|stored| Settled { id, stored }),
            Err(_) => Err(self.timed_out::<T>(id)),
        }
    }
}

/// A task JetStream acknowledged.
struct Settled {
    id: TaskId,
    stored: Stored,
}

/// A published task whose acknowledgement is outstanding.
struct InFlight {
    index: usize,
    id: TaskId,
    deadline: Instant,
    ack: PublishAckFuture,
    /// Subject, headers and body, to send it again.
    message: (Subject, HeaderMap, Bytes),
}
