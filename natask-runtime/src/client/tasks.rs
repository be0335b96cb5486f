//! Tasks by id: what a task is doing ([`Client::task_info`]), waiting for
//! its outcome ([`Client::wait`]) and cancelling it ([`Client::cancel`]),
//! read from and written to the task-state bucket (`store::tasks`).

use std::time::{Duration, SystemTime};

use natask_core::TaskId;

use super::Client;
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
        self.tasks().get(id).await
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
            let entry = tasks.entry(id).await?;
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
            info.state = TaskState::Cancelled;
            info.finished_at = Some(SystemTime::now());
            // A worker may have written meanwhile (it started the task, or
            // saw the request and recorded the cancellation): look again.
            if tasks.replace(&info, revision).await? {
                return Ok(Cancelled::Removed);
            }
        }
    }

    /// Deletes a waiting task's message or schedule from its queue's
    /// stream, and releases its unique lock.
    async fn remove_waiting(&self, info: &TaskInfo) -> Result<(), TrackingError> {
        let name = self.names().queue_stream(&info.queue);
        let failed = |source: async_nats::Error| {
            TrackingError::new(self.provisioner(), name.clone(), source)
        };
        let stream = self
            .jetstream()
            .get_stream_no_info(&name)
            .await
            .map_err(|e| failed(e.into()))?;
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
