//! Task state by id: what [`Client::task_info`], [`Client::wait`] and
//! [`Client::cancel`] read and write.
//!
//! Every tracked task has one entry in the key-value bucket
//! `<PREFIX>_TASKS`, keyed by its id and holding a JSON [`TaskInfo`]. The
//! producer creates it (`queued` or `scheduled`) after JetStream stored the
//! task; the worker overwrites it at each step. A producer's create never
//! overwrites a worker's entry, so a task that starts before its producer
//! got to record it still shows its real state. A cancellation is a second
//! key, `cancel.<id>`, which every runtime watches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::kv;
use async_nats::HeaderMap;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use natask_core::TaskId;

use crate::client::Client;

/// How long task states and cancellations are kept when
/// [`Client::with_task_retention`] is not called.
pub const DEFAULT_TASK_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Where a task is in its life. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TaskState {
    /// Stored in its queue, waiting for a worker.
    Queued,
    /// A delayed task waiting for its due time.
    Scheduled,
    /// A handler is running it.
    Running,
    /// An attempt failed; it waits in its queue for the next one.
    Retrying,
    /// The handler returned `Ok` (terminal).
    Succeeded,
    /// Moved to the dead letters: attempts exhausted, a fatal error, or
    /// a payload no handler could decode (terminal).
    Dead,
    /// Not started within its queue's validity period (terminal).
    Expired,
    /// Cancelled with [`Client::cancel`] (terminal).
    Cancelled,
}

impl TaskState {
    /// Whether the state is final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Dead | TaskState::Expired | TaskState::Cancelled
        )
    }

    /// The name used on the wire and in logs (`queued`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Scheduled => "scheduled",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Dead => "dead",
            TaskState::Expired => "expired",
            TaskState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of one task; see [`Client::task_info`]. Stored as JSON
/// (times in Unix milliseconds) in the bucket `<PREFIX>_TASKS`, so other
/// languages can read it too (`docs/wire-format.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The task's name.
    pub task: String,
    /// Its queue.
    pub queue: String,
    /// Where it is now.
    pub state: TaskState,
    /// Attempts started so far.
    pub attempts: u32,
    /// The error of the latest failed attempt, or why it is dead or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was enqueued.
    #[serde(default, with = "millis", skip_serializing_if = "Option::is_none")]
    pub enqueued_at: Option<SystemTime>,
    /// When a delayed task is (or was) due.
    #[serde(default, with = "millis", skip_serializing_if = "Option::is_none")]
    pub due_at: Option<SystemTime>,
    /// When its latest attempt started.
    #[serde(default, with = "millis", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<SystemTime>,
    /// When it reached a terminal state.
    #[serde(default, with = "millis", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<SystemTime>,
    /// The handler's `Ok` value as JSON, once it succeeded (`null` for
    /// handlers returning `()` or `Ok(())`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The task message's sequence in its queue's stream, so that
    /// cancelling a queued task can delete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<u64>,
    /// A delayed task's schedule subject, so that cancelling can remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) schedule: Option<String>,
}

impl TaskInfo {
    pub(crate) fn new(id: TaskId, task: &str, queue: &str, state: TaskState) -> Self {
        TaskInfo {
            id,
            task: task.to_owned(),
            queue: queue.to_owned(),
            state,
            attempts: 0,
            last_error: None,
            enqueued_at: None,
            due_at: None,
            started_at: None,
            finished_at: None,
            result: None,
            seq: None,
            schedule: None,
        }
    }

    fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .expect("a task's state always encodes")
            .into()
    }
}

mod millis {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_u64(crate::client::unix_millis(*t)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)))
    }
}

/// What [`Client::cancel`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// The task was queued, scheduled or waiting to be retried; it was
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

/// Reading or changing a task's state failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackingError {
    /// The bucket `<PREFIX>_TASKS` could not be created, read or written.
    #[error("the task state bucket `{bucket}` is not available")]
    Unavailable {
        /// The bucket.
        bucket: String,
        /// What JetStream answered.
        #[source]
        source: async_nats::Error,
    },
    /// A stored state is not valid JSON of a [`TaskInfo`].
    #[error("the stored state of task {id} does not decode: {source}")]
    Corrupt {
        /// The task.
        id: TaskId,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// [`Client::wait`] gave up before the task reached a terminal state.
    #[error("task {id} did not finish within {timeout:?} (last state: {})", .last.map_or("unknown", TaskState::as_str))]
    Timeout {
        /// The task.
        id: TaskId,
        /// The time waited.
        timeout: Duration,
        /// The last state seen, if any.
        last: Option<TaskState>,
    },
}

fn cancel_key(id: TaskId) -> String {
    format!("cancel.{id}")
}

impl Client {
    /// Keeps task states and cancellations for `retention` (default
    /// [`DEFAULT_TASK_RETENTION`]). Applies when this client creates the
    /// bucket `<PREFIX>_TASKS`; an existing bucket keeps its setting.
    pub fn with_task_retention(self, retention: Duration) -> Client {
        self.with_retention(retention)
    }

    /// The bucket of task states, created on first use.
    pub(crate) async fn task_store(&self) -> Result<&kv::Store, TrackingError> {
        let bucket = self.names().task_bucket();
        let retention = self.task_retention();
        let js = self.jetstream().clone();
        let may_create = self.provisioning() == crate::Provisioning::Create;
        self.task_store_cell()
            .get_or_try_init(|| async move {
                let unavailable = |source: async_nats::Error| TrackingError::Unavailable {
                    bucket: bucket.clone(),
                    source,
                };
                match js.get_key_value(&bucket).await {
                    Ok(store) => Ok(store),
                    Err(_) if !may_create => Err(unavailable(
                        crate::ProvisionError::Missing {
                            stream: format!("KV_{bucket}"),
                            consumer: None,
                        }
                        .into(),
                    )),
                    Err(_) => js
                        .create_key_value(kv::Config {
                            bucket: bucket.clone(),
                            description: "natask: the state of each task, and cancellations"
                                .to_owned(),
                            history: 1,
                            max_age: retention,
                            storage: async_nats::jetstream::stream::StorageType::File,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| unavailable(e.into())),
                }
            })
            .await
    }

    fn unavailable(&self, source: impl Into<async_nats::Error>) -> TrackingError {
        TrackingError::Unavailable {
            bucket: self.names().task_bucket(),
            source: source.into(),
        }
    }

    /// Sends `info` as a create-only write (it never replaces a worker's
    /// entry); the returned future is JetStream's answer.
    pub(crate) async fn send_initial_state(
        &self,
        info: &TaskInfo,
    ) -> Result<PublishAckFuture, TrackingError> {
        let store = self.task_store().await?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
        self.jetstream()
            .publish_with_headers(state_subject(store, info.id), headers, info.encode())
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// Records the state of a task just enqueued. A failure is logged, not
    /// returned: the task is stored, and an error would invite a duplicate.
    pub(crate) async fn record_initial_state(&self, info: &TaskInfo) {
        let error = match self.send_initial_state(info).await {
            Ok(ack) => match ack.await {
                Ok(_) => return,
                // A worker has already recorded it.
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => return,
                Err(e) => self.unavailable(e),
            },
            Err(e) => e,
        };
        tracing::warn!(id = %info.id, error = %error, "the task is enqueued, but its state could not be recorded; task_info will not know it");
    }

    /// The state of task `id`, or `None` if none is kept: its queue does not
    /// track tasks ([`QueuePolicy::tracking`](crate::QueuePolicy::tracking)),
    /// its retention passed, or there is no such task.
    ///
    /// ```no_run
    /// # async fn demo(client: natask_runtime::Client, id: natask_runtime::TaskId) -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(info) = client.task_info(id).await? {
    ///     println!("{} is {} after {} attempts", info.id, info.state, info.attempts);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn task_info(&self, id: TaskId) -> Result<Option<TaskInfo>, TrackingError> {
        let store = self.task_store().await?;
        let value = store
            .get(id.to_string())
            .await
            .map_err(|e| self.unavailable(e))?;
        value.map(|v| decode(id, &v)).transpose()
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
        let store = self.task_store().await?;
        let mut last = None;
        let watched = tokio::time::timeout(timeout, async {
            let mut watch = store
                .watch_with_history(id.to_string())
                .await
                .map_err(|e| self.unavailable(e))?;
            while let Some(entry) = watch.next().await {
                let entry = entry.map_err(|e| self.unavailable(e))?;
                if entry.operation != kv::Operation::Put {
                    continue;
                }
                let info = decode(id, &entry.value)?;
                last = Some(info.state);
                if info.state.is_terminal() {
                    return Ok(info);
                }
            }
            Err(self.unavailable(std::io::Error::other("the watch ended")))
        })
        .await;
        watched.unwrap_or(Err(TrackingError::Timeout { id, timeout, last }))
    }

    /// Cancels task `id`: a queued, scheduled or retrying task is removed
    /// and never runs; a running one is stopped at its handler's next await
    /// point (its [`TaskContext::is_cancelled`](crate::TaskContext::is_cancelled)
    /// turns true) and recorded as cancelled. Returns what it found.
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
        let store = self.task_store().await?;
        let mut requested = false;
        loop {
            let entry = store
                .entry(id.to_string())
                .await
                .map_err(|e| self.unavailable(e))?
                .filter(|entry| entry.operation == kv::Operation::Put);
            let info = entry
                .as_ref()
                .map(|entry| decode(id, &entry.value))
                .transpose()?;
            if let Some(state) = info.as_ref().map(|i| i.state).filter(|s| s.is_terminal()) {
                return Ok(Cancelled::Finished(state));
            }
            // The request every runtime watches: no worker starts the task
            // after this, and one running it stops it.
            if !requested {
                store
                    .put(cancel_key(id), bytes::Bytes::new())
                    .await
                    .map_err(|e| self.unavailable(e))?;
                requested = true;
            }
            let (Some(entry), Some(mut info)) = (entry, info) else {
                return Ok(Cancelled::Unknown);
            };
            if info.state == TaskState::Running {
                return Ok(Cancelled::Stopping);
            }
            self.remove_waiting(&info).await?;
            info.state = TaskState::Cancelled;
            info.finished_at = Some(SystemTime::now());
            match store
                .update(id.to_string(), info.encode(), entry.revision)
                .await
            {
                Ok(_) => return Ok(Cancelled::Removed),
                // A worker wrote meanwhile (it started the task, or saw the
                // request and recorded the cancellation): look again.
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(self.unavailable(e)),
            }
        }
    }

    /// Deletes a waiting task's message or schedule from its queue's stream.
    async fn remove_waiting(&self, info: &TaskInfo) -> Result<(), TrackingError> {
        let stream = match self
            .jetstream()
            .get_stream_no_info(self.names().queue_stream(&info.queue))
            .await
        {
            Ok(stream) => stream,
            Err(e) => return Err(self.unavailable(e)),
        };
        // Read first: a unique task's lock must not outlive it until its TTL.
        let waiting = match (&info.schedule, info.seq) {
            (Some(schedule), _) => stream.get_last_raw_message_by_subject(schedule).await.ok(),
            (None, Some(seq)) => stream.get_raw_message(seq).await.ok(),
            (None, None) => None,
        };
        if let Some(schedule) = &info.schedule {
            stream
                .purge()
                .filter(schedule)
                .await
                .map_err(|e| self.unavailable(e))?;
        }
        if let Some(seq) = info.seq {
            // Already gone when a worker took it meanwhile; the
            // cancellation request covers that case.
            let _ = stream.delete_message(seq).await;
        }
        if let Some(message) = waiting {
            crate::unique::abandoned(self, Some(&message.headers), info.id).await;
        }
        Ok(())
    }
}

impl Client {
    /// Writes a worker's view of a task, replacing what was there, and
    /// waits for JetStream to store it. A failure is logged: the task's
    /// outcome does not depend on its state being recorded.
    pub(crate) async fn record_state(&self, info: &TaskInfo) {
        let stored = match self.task_store().await {
            Ok(store) => store
                .put(info.id.to_string(), info.encode())
                .await
                .map(drop)
                .map_err(|e| self.unavailable(e)),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::warn!(id = %info.id, state = %info.state, error = %e, "could not record the task's state");
        }
    }

    /// Like [`record_state`](Self::record_state), without waiting for
    /// JetStream's answer: for the `running` state, which a later state
    /// (sent on the same connection, so stored after it) replaces.
    pub(crate) async fn send_state(&self, info: &TaskInfo) {
        let Some(store) = self.task_store_cell().get() else {
            return;
        };
        let subject = state_subject(store, info.id);
        // A plain publish, with no reply subject: JetStream stores it and
        // sends no acknowledgement that nobody would read.
        if let Err(e) = self.nats().publish(subject, info.encode()).await {
            tracing::debug!(id = %info.id, error = %e, "could not send the task's state");
        }
    }
}

fn decode(id: TaskId, value: &[u8]) -> Result<TaskInfo, TrackingError> {
    serde_json::from_slice(value).map_err(|source| TrackingError::Corrupt { id, source })
}

/// The subject a put of task `id`'s state is published to, as the store's
/// own `put` builds it.
fn state_subject(store: &kv::Store, id: TaskId) -> String {
    format!("{}{id}", store.put_prefix.as_ref().unwrap_or(&store.prefix))
}

/// A runtime's view of cancellations: every `cancel.<id>` key seen, and a
/// token for each task running here.
#[derive(Default)]
pub(crate) struct Cancellations {
    inner: Mutex<CancelState>,
}

#[derive(Default)]
struct CancelState {
    requested: HashMap<TaskId, Instant>,
    running: HashMap<TaskId, (CancellationToken, Arc<AtomicBool>)>,
    pruned: Option<Instant>,
}

/// A running task's registration; dropping it unregisters the task.
pub(crate) struct Running<'a> {
    cancellations: &'a Cancellations,
    id: TaskId,
    pub(crate) token: CancellationToken,
    pub(crate) flag: Arc<AtomicBool>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self
            .cancellations
            .inner
            .lock()
            .expect("cancellations poisoned");
        // A second delivery of the same task (after a lost lease) may have
        // registered since; leave its entry.
        if state
            .running
            .get(&self.id)
            .is_some_and(|(_, flag)| Arc::ptr_eq(flag, &self.flag))
        {
            state.running.remove(&self.id);
        }
    }
}

impl Cancellations {
    /// Registers `id` as running here, unless its cancellation was seen.
    pub(crate) fn start(&self, id: TaskId) -> Option<Running<'_>> {
        let mut state = self.inner.lock().expect("cancellations poisoned");
        if state.requested.contains_key(&id) {
            return None;
        }
        let token = CancellationToken::new();
        let flag = Arc::new(AtomicBool::new(false));
        state.running.insert(id, (token.clone(), Arc::clone(&flag)));
        Some(Running {
            cancellations: self,
            id,
            token,
            flag,
        })
    }

    /// Records a cancellation request; stops the task if it runs here.
    fn requested(&self, id: TaskId, retention: Duration) {
        let mut state = self.inner.lock().expect("cancellations poisoned");
        let now = Instant::now();
        state.requested.insert(id, now);
        if let Some((token, flag)) = state.running.get(&id) {
            flag.store(true, Ordering::Relaxed);
            token.cancel();
        }
        // Requests older than the bucket's retention are gone from it too.
        if state
            .pruned
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(60))
        {
            state.pruned = Some(now);
            state
                .requested
                .retain(|_, seen| now.duration_since(*seen) < retention);
        }
    }

    /// Follows every `cancel.<id>` key of the bucket (those already there
    /// first) until `stop`; re-watches after a failure. `caught_up` is
    /// sent once the requests made before the call are known.
    pub(crate) async fn follow(
        self: Arc<Self>,
        client: Client,
        stop: CancellationToken,
        caught_up: tokio::sync::oneshot::Sender<()>,
    ) {
        let retention = client.task_retention();
        let mut caught_up = Some(caught_up);
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let watch = match client.task_store().await {
                Ok(store) => match store.watch_with_history("cancel.>").await {
                    Ok(watch) => {
                        if !has_cancellations(store).await {
                            caught_up.take().map(|tx| tx.send(()));
                        }
                        Ok(watch)
                    }
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            match watch {
                Ok(mut watch) => loop {
                    let entry = tokio::select! {
                        entry = watch.next() => entry,
                        () = stop.cancelled() => return,
                    };
                    match entry {
                        Some(Ok(entry)) => {
                            failures = 0;
                            let id = entry
                                .key
                                .strip_prefix("cancel.")
                                .and_then(|id| id.parse().ok());
                            if let (kv::Operation::Put, Some(id)) = (entry.operation, id) {
                                self.requested(id, retention);
                            }
                            if entry.delta == 0 {
                                caught_up.take().map(|tx| tx.send(()));
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "following task cancellations failed; watching again");
                            break;
                        }
                        None => break,
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow task cancellations; retrying");
                }
            }
            failures += 1;
            let delay = Duration::from_millis(250 * u64::from(failures.min(20)));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Whether the bucket holds any cancellation request (if unsure, yes).
async fn has_cancellations(store: &kv::Store) -> bool {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    let subject = format!("{}cancel.>", store.prefix);
    match store.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(_) => true,
        Err(e) => e.kind() != LastRawMessageErrorKind::NoMessageFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_as_lowercase_json() {
        let mut info = TaskInfo::new(TaskId::new(), "send_email", "emails", TaskState::Retrying);
        info.attempts = 2;
        info.last_error = Some("smtp down".into());
        info.enqueued_at = Some(std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        let json = String::from_utf8(info.encode().to_vec()).unwrap();
        assert!(json.contains(r#""state":"retrying""#), "{json}");
        assert!(json.contains(r#""enqueued_at":1700000000123"#), "{json}");
        assert!(!json.contains("started_at"), "{json}");
        assert_eq!(decode(info.id, json.as_bytes()).unwrap(), info);
    }

    #[test]
    fn only_final_states_are_terminal() {
        use TaskState::*;
        let terminal: Vec<_> = [
            Queued, Scheduled, Running, Retrying, Succeeded, Dead, Expired, Cancelled,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(terminal, [Succeeded, Dead, Expired, Cancelled]);
    }

    #[test]
    fn a_cancelled_task_does_not_start_and_a_running_one_is_stopped() {
        let cancellations = Cancellations::default();
        let (a, b) = (TaskId::new(), TaskId::new());
        let running = cancellations.start(a).expect("not cancelled yet");
        cancellations.requested(a, Duration::from_secs(60));
        assert!(running.token.is_cancelled());
        assert!(running.flag.load(Ordering::Relaxed));
        cancellations.requested(b, Duration::from_secs(60));
        assert!(cancellations.start(b).is_none());
        drop(running);
        assert!(cancellations.inner.lock().unwrap().running.is_empty());
    }
}
