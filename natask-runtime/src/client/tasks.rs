//! Tasks by id: what a task is doing ([`Client::task_info`]), waiting for
//! its outcome ([`Client::wait`]) and cancelling it ([`Client::cancel`]),
//! read from and written to the task-state bucket (`store::tasks`), and,
//! for a task still waiting, read from its queue's stream, where it has a
//! subject of its own.

use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::RawMessageErrorKind;
use natask_core::TaskId;

use super::Client;
use crate::jetstream::headers::{self, TASK};
use crate::jetstream::time;
use crate::store::tasks::{TaskInfo, TaskState, TrackingError};

/// What [`Client::cancel`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// The task was queued, delayed or waiting to be retried; it was
    /// removed and will never run.
    Removed,
    /// The task is running; its worker drops the handler at its next await
    /// point and records it as cancelled (see [`Client::wait`]).
    Stopping,
    /// The task had already finished in this state; nothing changed.
    Finished(TaskState),
    /// No state is known for the id (tracking is off for its queue, the
    /// state's retention passed, or no such task exists). The cancellation
    /// is recorded all the same: a worker that receives the task within the
    /// retention does not run it.
    Unknown,
}

impl Client {
    /// The state of task `id`, or `None` if none is kept: its queue does not
    /// track tasks ([`QueuePolicy::tracking`](crate::QueuePolicy::tracking)),
    /// its retention passed, or there is no such task.
    ///
    /// A task of a tracked queue that no worker has taken yet has no entry
    /// in the task bucket (unless
    /// [`QueuePolicy::track_queued`](crate::QueuePolicy::track_queued)): it
    /// is found on its own subject in its queue's stream, and answered as
    /// `queued`. Looking for an id that is neither kept nor waiting
    /// costs one request per queue.
    ///
    /// An id names one task: the state is that of the first task enqueued
    /// under `id`. A later message reusing the id (past the duplicate
    /// window, or with another `Nats-Msg-Id`) never replaces it; a worker
    /// dead-letters that message with reason `duplicate_id`.
    ///
    /// ```no_run
    /// # async fn demo(client: natask_runtime::Client, id: natask_runtime::TaskId) -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(info) = client.task_info(id).await? {
    ///     println!("{} is {} after {} attempts", info.id, info.state, info.attempts);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn task_info(&self, id: TaskId) -> Result<Option<TaskInfo>, TrackingError> {
        Ok(self.task_entry(id).await?.map(|(info, _)| info))
    }

    /// The kept state of task `id` and its revision, or, for a task still
    /// waiting in a queue and not kept, its state read from its message,
    /// with revision 0 (nothing kept).
    async fn task_entry(&self, id: TaskId) -> Result<Option<(TaskInfo, u64)>, TrackingError> {
        let tasks = self.tasks();
        if let Some(kept) = tasks.entry(id).await? {
            return Ok(Some(kept));
        }
        if let Some(waiting) = self.waiting(id).await? {
            return Ok(Some((waiting, 0)));
        }
        // A worker may have finished it between the two reads: its final
        // state is written before its message is removed.
        tasks.entry(id).await
    }

    /// Task `id` as it waits in one of the queues, if it does. A queue
    /// the user may not read is passed over (an operator of some queues
    /// asks about their tasks).
    async fn waiting(&self, id: TaskId) -> Result<Option<TaskInfo>, TrackingError> {
        let queues = self.queues().await.map_err(|e| {
            let streams = format!("{}*", self.names().queue_stream(""));
            TrackingError::new(self.provisioner(), streams, e.into())
        })?;
        for queue in queues {
            match self.waiting_in(&queue, id).await {
                Ok(Some(info)) => return Ok(Some(info)),
                Ok(None) => {}
                Err(TrackingError::PermissionDenied { stream, violation }) => {
                    tracing::debug!(%id, stream, %violation, "not allowed to look for the task in this queue");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Task `id` as it waits in `queue`, if it does: its message on its
    /// own subject (read from the stream's leader, so a task just enqueued
    /// is found).
    pub(crate) async fn waiting_in(
        &self,
        queue: &str,
        id: TaskId,
    ) -> Result<Option<TaskInfo>, TrackingError> {
        let stream = self.queue_stream(queue).await?;
        let filter = self.names().waiting_filter(queue, &id.to_string());
        match stream.get_first_raw_message_by_subject(filter, 1).await {
            Ok(message) => Ok(Some(waiting_state(queue, id, &message))),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(self.queue_failed(queue, e.into())),
        }
    }

    /// Waits until task `id` reaches a terminal state and returns its
    /// state then; [`TrackingError::Timeout`] after `timeout`. Watches the
    /// task's entry, so it returns as soon as the state is written.
    ///
    /// ```no_run
    /// # #[natask_runtime::task(queue = "reports")]
    /// # async fn build_report(month: u32) -> Result<u64, natask_runtime::TaskError> { Ok(0) }
    /// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let id = BuildReport::new(11).enqueue(&client).await?.id;
    /// let done = client.wait(id, Duration::from_secs(60)).await?;
    /// let rows: u64 = serde_json::from_value(done.result.unwrap_or_default())?;
    /// # Ok(()) }
    /// ```
    pub async fn wait(&self, id: TaskId, timeout: Duration) -> Result<TaskInfo, TrackingError> {
        self.tasks().wait(id, timeout).await
    }

    /// Cancels task `id`, wherever it is: a queued, delayed or retrying
    /// task is removed and never runs; a running one is stopped at its
    /// handler's next await point (its
    /// [`TaskContext::is_cancelled`](crate::TaskContext::is_cancelled)
    /// turns true) and recorded as cancelled. Returns what it found.
    ///
    /// Every runtime also learns of the request, so a task whose state is
    /// not kept (tracking off, [`Cancelled::Unknown`]) does not run if a
    /// worker receives it within the task-state retention
    /// ([`Client::with_task_retention`], 24 h by default): a delayed task
    /// due later than that should keep tracking on to be cancellable.
    ///
    /// ```no_run
    /// # async fn demo(client: natask_runtime::Client, id: natask_runtime::TaskId) -> Result<(), Box<dyn std::error::Error>> {
    /// use natask_runtime::Cancelled;
    /// match client.cancel(id).await? {
    ///     Cancelled::Removed => println!("it will never run"),
    ///     Cancelled::Stopping => println!("it is being stopped"),
    ///     Cancelled::Finished(state) => println!("too late, it is {state}"),
    ///     _ => println!("unknown task; it will not run if it ever arrives"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, id: TaskId) -> Result<Cancelled, TrackingError> {
        let tasks = self.tasks();
        let mut requested = false;
        loop {
            let entry = self.task_entry(id).await?;
            if let Some(state) = entry
                .as_ref()
                .map(|(info, _)| info.state)
                .filter(|s| s.is_terminal())
            {
                return Ok(Cancelled::Finished(state));
            }
            if !requested {
                tasks.request_cancel(id).await?;
                requested = true;
            }
            let Some((mut info, revision)) = entry else {
                return Ok(Cancelled::Unknown);
            };
            if info.state == TaskState::Running {
                return Ok(Cancelled::Stopping);
            }
            self.remove_waiting(&info).await?;
            if revision == 0 && !self.tracks(&info.queue) {
                return Ok(Cancelled::Removed);
            }
            info.state = TaskState::Cancelled;
            info.finished_at = Some(SystemTime::now());
            // A worker may have written meanwhile (it started the task, or
            // saw the request and recorded the cancellation): look again.
            // Revision 0 writes only if nothing is kept.
            if tasks.replace(&info, revision).await? {
                return Ok(Cancelled::Removed);
            }
        }
    }

    /// The stream of `queue`, where its waiting tasks are.
    async fn queue_stream(
        &self,
        queue: &str,
    ) -> Result<jetstream::stream::Stream<()>, TrackingError> {
        self.jetstream()
            .get_stream_no_info(self.names().queue_stream(queue))
            .await
            .map_err(|e| self.queue_failed(queue, e.into()))
    }

    /// A failed request about the stream of `queue`.
    fn queue_failed(&self, queue: &str, source: async_nats::Error) -> TrackingError {
        TrackingError::new(self.provisioner(), self.names().queue_stream(queue), source)
    }

    /// Deletes a waiting task's message or schedule from its queue's
    /// stream, and releases its unique lock.
    async fn remove_waiting(&self, info: &TaskInfo) -> Result<(), TrackingError> {
        let failed = |source: async_nats::Error| self.queue_failed(&info.queue, source);
        let stream = self.queue_stream(&info.queue).await?;
        // Read first: a unique task's lock must not outlive it until its TTL.
        let waiting = match (&info.delayed_subject, info.seq) {
            (Some(subject), _) => stream.get_last_raw_message_by_subject(subject).await.ok(),
            (None, Some(seq)) => stream.get_raw_message(seq).await.ok(),
            (None, None) => None,
        };
        if let Some(subject) = &info.delayed_subject {
            stream
                .purge()
                .filter(subject)
                .await
                .map_err(|e| failed(e.into()))?;
        }
        if let Some(seq) = info.seq {
            // Already gone when a worker took it meanwhile; the
            // cancellation request covers that case.
            let _ = stream.delete_message(seq).await;
        }
        if let Some(message) = waiting {
            self.locks()
                .abandoned(Some(&message.headers), info.id)
                .await;
        }
        Ok(())
    }
}

/// The state of waiting task `id` of `queue`, read from its message: when
/// it was stored, and where, so that cancelling it can delete it.
fn waiting_state(queue: &str, id: TaskId, message: &StreamMessage) -> TaskInfo {
    let task = headers::get(Some(&message.headers), TASK).unwrap_or_default();
    let mut info = TaskInfo::new(id, task, queue, TaskState::Queued);
    info.seq = Some(message.sequence);
    info.enqueued_at = time::from_unix_nanos(message.time.unix_timestamp_nanos());
    info
}
