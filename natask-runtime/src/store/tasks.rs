//! Task state by id: the key-value bucket `<PREFIX>_TASKS`, which
//! [`Client::task_info`](crate::Client::task_info),
//! [`Client::wait`](crate::Client::wait) and
//! [`Client::cancel`](crate::Client::cancel) read and workers write.
//!
//! Every tracked task has one entry, keyed by its id and holding a JSON
//! [`TaskInfo`]. The producer creates it (`queued` or `delayed`) after
//! JetStream stored the task; the worker overwrites it at each step. A
//! producer's create never overwrites a worker's entry, so a task that
//! starts before its producer got to record it still shows its real state.
//! A cancellation is a second key, `cancel.<id>`, which every runtime
//! watches (`store::cancellations`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::context::traits::TimeoutProvider;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::kv;
use async_nats::HeaderMap;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use natask_core::TaskId;

use crate::jetstream::assets::Bucket;
use crate::jetstream::headers::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE;
use crate::jetstream::permissions::PermissionViolation;
use crate::jetstream::provision::Provisioner;
use crate::jetstream::publish;

mod finals;

/// How long the state of a task just enqueued is tried again.
pub(crate) const RECORD_NEW_FOR: Duration = Duration::from_secs(60);

/// How long task states and cancellations are kept when
/// [`Client::with_task_retention`](crate::Client::with_task_retention) is
/// not called.
pub const DEFAULT_TASK_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Where a task is in its life. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TaskState {
    /// Stored in its queue, waiting for a worker.
    Queued,
    /// A delayed task waiting for its due time (`enqueue_in`,
    /// `enqueue_at`). Read from `scheduled` too, as natask 0.1 wrote it.
    #[serde(alias = "scheduled")]
    Delayed,
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
    /// Cancelled with [`Client::cancel`](crate::Client::cancel) (terminal).
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
            TaskState::Delayed => "delayed",
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

/// What is known of one task; see [`Client::task_info`](crate::Client::task_info). Stored as JSON
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
    /// cancelling a queued task can delete it, and a worker can tell the
    /// task's message from another reusing its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<u64>,
    /// A delayed task's schedule subject, so that cancelling can remove it.
    #[serde(default, rename = "schedule", skip_serializing_if = "Option::is_none")]
    pub(crate) delayed_subject: Option<String>,
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
            delayed_subject: None,
        }
    }

    pub(crate) fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .expect("a task's state always encodes")
            .into()
    }
}

/// Times as Unix milliseconds in stored JSON.
pub(crate) mod millis {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::jetstream::time;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_u64(time::unix_millis(*t)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(time::from_unix_millis))
    }

    /// A time that is always there.
    pub(crate) mod required {
        use std::time::SystemTime;

        use serde::{Deserialize, Deserializer, Serializer};

        use crate::jetstream::time;

        pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u64(time::unix_millis(*t))
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
            Ok(time::from_unix_millis(u64::deserialize(d)?))
        }
    }
}

/// Reading or changing a task's state failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackingError {
    /// The bucket `<PREFIX>_TASKS`, or the queue stream of a task being
    /// cancelled, could not be opened, read or written.
    #[error("stream `{stream}` could not be opened, read or written")]
    JetStream {
        /// The stream: `KV_<PREFIX>_TASKS`, or a queue's.
        stream: String,
        /// What JetStream answered.
        #[source]
        source: async_nats::Error,
    },
    /// The server refused a request about the stream for lack of
    /// permission, and so never answered it (reported on connections with
    /// a [`PermissionWatch`](crate::PermissionWatch)).
    #[error(
        "stream `{stream}` could not be opened, read or written: permission denied: the NATS user \
         may not {violation} (the server reported a permissions violation); grant it \
         (docs/security.md lists what each role needs)"
    )]
    PermissionDenied {
        /// The stream: `KV_<PREFIX>_TASKS`, or a queue's.
        stream: String,
        /// What the server refused.
        violation: PermissionViolation,
    },
    /// A stored state is not valid JSON of a [`TaskInfo`].
    #[error("the stored state of task {id} does not decode")]
    Corrupt {
        /// The task.
        id: TaskId,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// [`Client::wait`](crate::Client::wait) gave up before the task reached a terminal state.
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

impl TrackingError {
    /// A failed request about `stream`: refused by the server's
    /// permissions, if JetStream did not answer and the server reported a
    /// violation meanwhile.
    pub(crate) fn new(
        provisioner: &Provisioner,
        stream: String,
        source: async_nats::Error,
    ) -> TrackingError {
        match provisioner.explain(&*source) {
            Some(violation) => TrackingError::PermissionDenied { stream, violation },
            None => TrackingError::JetStream { stream, source },
        }
    }
}

/// The bucket of task states, opened (or created) on first use.
#[derive(Clone)]
pub(crate) struct TaskStore {
    provisioner: Arc<Provisioner>,
    /// The first states this client is writing in the background, by
    /// task: a read of such a task waits for its write, so a client always
    /// reads what it enqueued. The sender is dropped when the write ends.
    writing: Arc<Mutex<HashMap<TaskId, watch::Receiver<()>>>>,
    /// Final states sent and not yet confirmed (`finals`).
    chain: Arc<Mutex<finals::Chain>>,
}

impl TaskStore {
    pub(crate) fn new(provisioner: Arc<Provisioner>) -> TaskStore {
        TaskStore {
            provisioner,
            writing: Arc::default(),
            chain: Arc::default(),
        }
    }

    /// [`record_new`](Self::record_new) in the background: reads of the
    /// task through this store wait for it (up to the client's timeout).
    pub(crate) fn record_new_in_background(&self, info: TaskInfo) {
        let (done, written) = watch::channel(());
        self.writing().insert(info.id, written);
        let store = self.clone();
        tokio::spawn(async move {
            store.record_new(&info).await;
            store.writing().remove(&info.id);
            drop(done);
        });
    }

    fn writing(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, watch::Receiver<()>>> {
        self.writing.lock().expect("writing map poisoned")
    }

    /// Waits until a state this client is writing for task `id` is
    /// written (or the client's timeout passed).
    async fn written(&self, id: TaskId) {
        let Some(mut written) = self.writing().get(&id).cloned() else {
            return;
        };
        let _ = tokio::time::timeout(self.provisioner.js().timeout(), written.changed()).await;
    }

    /// How long states and cancellation requests are kept.
    pub(crate) fn retention(&self) -> Duration {
        self.provisioner.task_retention()
    }

    pub(crate) async fn bucket(&self) -> Result<&kv::Store, TrackingError> {
        self.provisioner
            .bucket(Bucket::Tasks)
            .await
            .map_err(|e| self.failed(e))
    }

    fn failed(&self, source: impl Into<async_nats::Error>) -> TrackingError {
        let stream = format!("KV_{}", Bucket::Tasks.name(self.provisioner.names()));
        TrackingError::new(&self.provisioner, stream, source.into())
    }

    /// Sends `info` as a create-only write (it never replaces a worker's
    /// entry); the returned future is JetStream's answer.
    pub(crate) async fn create(&self, info: &TaskInfo) -> Result<PublishAckFuture, TrackingError> {
        let store = self.bucket().await?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
        self.provisioner
            .js()
            .publish_with_headers(state_subject(store, info.id), headers, info.encode())
            .await
            .map_err(|e| self.failed(e))
    }

    /// Records the state of a task just enqueued, as a create-only write
    /// sent again while the bucket does not answer (a leader election),
    /// for up to [`RECORD_NEW_FOR`]. A failure is logged, not returned: the
    /// task is stored, and an error would invite a duplicate.
    pub(crate) async fn record_new(&self, info: &TaskInfo) {
        let mut pause = Duration::from_millis(50);
        let recorded = tokio::time::timeout(RECORD_NEW_FOR, async {
            loop {
                // The bucket may be unreachable too: open it again.
                let Ok(store) = self.bucket().await else {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    continue;
                };
                let mut headers = HeaderMap::new();
                headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
                let subject = state_subject(store, info.id).into();
                let js = self.provisioner.js();
                return publish::until_answered(js, subject, headers, info.encode(), false).await;
            }
        });
        let error = match recorded.await {
            Ok(Ok(_)) => return,
            // A worker has already recorded it (often, when tasks run
            // fast), or an unanswered send of this call did. Another task
            // with this id is refused before publishing (`Client::enqueue_with`
            // looks up a chosen id; a new one names nothing), so nothing is
            // read here: a read per task cost the end-to-end path its
            // headroom (BENCHMARKS.md, 2026-12-01, later).
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {RECORD_NEW_FOR:?}"),
        };
        tracing::warn!(id = %info.id, error, "the task is enqueued, but its state could not be recorded; task_info will not know it until a worker runs it");
    }

    /// Writes a worker's view of a task, replacing what was there, and
    /// waits for JetStream to store it, sending it again while the bucket
    /// does not answer (a leader election) for up to the client's timeout.
    /// A failure is logged: the task's outcome does not depend on its
    /// state being recorded.
    pub(crate) async fn record(&self, info: &TaskInfo) {
        let js = self.provisioner.js();
        let stored = tokio::time::timeout(js.timeout(), async {
            let store = self.bucket().await?;
            let subject = state_subject(store, info.id).into();
            publish::until_answered(js, subject, HeaderMap::new(), info.encode(), false)
                .await
                .map_err(|e| self.failed(e))
        });
        let error = match stored.await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", js.timeout()),
        };
        tracing::warn!(id = %info.id, state = %info.state, error, "could not record the task's state");
    }

    /// Like [`record`](Self::record), without waiting for JetStream's
    /// answer: for the `running` state, which a later state (sent on the
    /// same connection, so stored after it) replaces.
    pub(crate) async fn send(&self, info: &TaskInfo) {
        let Some(store) = self.provisioner.opened(Bucket::Tasks) else {
            return;
        };
        let subject = state_subject(store, info.id);
        // A plain publish, with no reply subject: JetStream stores it and
        // sends no acknowledgement that nobody would read.
        let nats = self.provisioner.js().client();
        if let Err(e) = nats.publish(subject, info.encode()).await {
            tracing::debug!(id = %info.id, error = %e, "could not send the task's state");
        }
    }

    /// The state of task `id`, if one is kept.
    pub(crate) async fn get(&self, id: TaskId) -> Result<Option<TaskInfo>, TrackingError> {
        Ok(self.entry(id).await?.map(|(info, _)| info))
    }

    /// The state of task `id` and its revision, if one is kept.
    pub(crate) async fn entry(&self, id: TaskId) -> Result<Option<(TaskInfo, u64)>, TrackingError> {
        self.written(id).await;
        self.stored(id).await
    }

    /// [`entry`](Self::entry) without waiting for this client's own write.
    async fn stored(&self, id: TaskId) -> Result<Option<(TaskInfo, u64)>, TrackingError> {
        let store = self.bucket().await?;
        let entry = store
            .entry(id.to_string())
            .await
            .map_err(|e| self.failed(e))?
            .filter(|entry| entry.operation == kv::Operation::Put);
        entry
            .map(|e| Ok((decode(id, &e.value)?, e.revision)))
            .transpose()
    }

    /// Replaces the state at `revision` with `info`; `false` if it changed
    /// meanwhile.
    pub(crate) async fn replace(
        &self,
        info: &TaskInfo,
        revision: u64,
    ) -> Result<bool, TrackingError> {
        let store = self.bucket().await?;
        match store
            .update(info.id.to_string(), info.encode(), revision)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Waits until task `id` reaches a terminal state, watching its entry.
    pub(crate) async fn wait(
        &self,
        id: TaskId,
        timeout: Duration,
    ) -> Result<TaskInfo, TrackingError> {
        let store = self.bucket().await?;
        let mut last = None;
        let watched = tokio::time::timeout(timeout, async {
            let mut watch = store
                .watch_with_history(id.to_string())
                .await
                .map_err(|e| self.failed(e))?;
            while let Some(entry) = watch.next().await {
                let entry = entry.map_err(|e| self.failed(e))?;
                if entry.operation != kv::Operation::Put {
                    continue;
                }
                let info = decode(id, &entry.value)?;
                last = Some(info.state);
                if info.state.is_terminal() {
                    return Ok(info);
                }
            }
            Err(self.failed(std::io::Error::other("the watch ended")))
        })
        .await;
        watched.unwrap_or(Err(TrackingError::Timeout { id, timeout, last }))
    }

    /// Records the request every runtime watches: no worker starts task
    /// `id` after this, and one running it stops it.
    pub(crate) async fn request_cancel(&self, id: TaskId) -> Result<(), TrackingError> {
        let store = self.bucket().await?;
        store
            .put(cancel_key(id), bytes::Bytes::new())
            .await
            .map(drop)
            .map_err(|e| self.failed(e))
    }
}

/// The key of the cancellation request of task `id`.
fn cancel_key(id: TaskId) -> String {
    format!("{CANCEL_PREFIX}{id}")
}

/// Keys of cancellation requests start with this.
pub(crate) const CANCEL_PREFIX: &str = "cancel.";

fn decode(id: TaskId, value: &[u8]) -> Result<TaskInfo, TrackingError> {
    serde_json::from_slice(value).map_err(|source| TrackingError::Corrupt { id, source })
}

/// The subject a put of task `id`'s state is published to, as the store's
/// own `put` builds it.
fn state_subject(store: &kv::Store, id: TaskId) -> String {
    format!("{}{id}", store.put_prefix.as_ref().unwrap_or(&store.prefix))
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
    fn delayed_tasks_read_as_natask_0_1_wrote_them() {
        let id = TaskId::new();
        let old =
            format!(r#"{{"id":"{id}","task":"t","queue":"q","state":"scheduled","attempts":0}}"#);
        assert_eq!(
            decode(id, old.as_bytes()).unwrap().state,
            TaskState::Delayed
        );
        let info = TaskInfo::new(id, "t", "q", TaskState::Delayed);
        let json = String::from_utf8(info.encode().to_vec()).unwrap();
        assert!(json.contains(r#""state":"delayed""#), "{json}");
    }

    #[test]
    fn only_final_states_are_terminal() {
        use TaskState::*;
        let terminal: Vec<_> = [
            Queued, Delayed, Running, Retrying, Succeeded, Dead, Expired, Cancelled,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(terminal, [Succeeded, Dead, Expired, Cancelled]);
    }
}
