//! Delayed tasks: JetStream message schedules (`Nats-Schedule: @at`,
//! nats-server 2.12+).
//!
//! A delayed task is published to its own schedule subject
//! `<prefix>.s.<queue>.<task>.<id>` in the queue's stream, with the task's
//! body and headers plus `Nats-Schedule: @at <due time>` and
//! `Nats-Schedule-Target: <prefix>.q.<queue>.<task>`. When it is due, the
//! server stores a copy on the target subject (dropping the schedule
//! headers and `Nats-Msg-Id`, adding `Nats-Scheduler` and
//! `Nats-Schedule-Next`) and deletes the schedule. Nothing in natask holds
//! the task in the meantime; [`Client::cancel`] removes a waiting one. The
//! publish itself is the one enqueue path (`client::enqueue`);
//! `docs/scheduling.md` has the details.

use std::time::{Duration, SystemTime};

use natask_core::Task;

use super::options::{EnqueueOptions, Enqueued};
use super::Client;
use crate::EnqueueError;

impl Client {
    /// Enqueues `task` to run once `delay` has passed; returns its id once
    /// JetStream has stored the schedule.
    ///
    /// The task waits on the server as a message schedule (nats-server 2.12
    /// or newer; older servers get [`EnqueueError::SchedulesUnsupported`]),
    /// not in any worker or producer, so it survives restarts of both. It
    /// fires within a few milliseconds of its due time while the server
    /// runs; a task that fell due while the server was down fires as soon
    /// as it is back. A zero delay enqueues at once, exactly like
    /// [`enqueue`](Self::enqueue). Same as
    /// `enqueue_with(task, EnqueueOptions::new().delay(delay))`.
    ///
    /// The generated `SendEmail { .. }.enqueue_in(&client, delay)` calls this.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # #[natask_runtime::task(queue = "emails")]
    /// # async fn remind(to: String) {}
    /// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let reminder = Remind::new("ada@example.com".into());
    /// let id = client.enqueue_in(&reminder, Duration::from_secs(3600)).await?.id;
    /// // changed our mind:
    /// client.cancel(id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_in<T: Task>(
        &self,
        task: &T,
        delay: Duration,
    ) -> Result<Enqueued, EnqueueError> {
        self.enqueue_with(task, EnqueueOptions::new().delay(delay))
            .await
    }

    /// Enqueues `task` to run at `due`; returns its id once JetStream has
    /// stored the schedule.
    ///
    /// Like [`enqueue_in`](Self::enqueue_in). A `due` time that is not in
    /// the future (by this machine's clock) enqueues at once, exactly like
    /// [`enqueue`](Self::enqueue). Same as
    /// `enqueue_with(task, EnqueueOptions::new().due_at(due))`.
    ///
    /// The generated `SendEmail { .. }.enqueue_at(&client, due)` calls this.
    pub async fn enqueue_at<T: Task>(
        &self,
        task: &T,
        due: SystemTime,
    ) -> Result<Enqueued, EnqueueError> {
        self.enqueue_with(task, EnqueueOptions::new().due_at(due))
            .await
    }
}
