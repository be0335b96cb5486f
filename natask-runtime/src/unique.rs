//! Unique tasks and enqueue options.
//!
//! Two layers, both answered with an [`Enqueued`]:
//!
//! - **Idempotent enqueue**: [`EnqueueOptions::id`] gives the task id, which
//!   is also its `Nats-Msg-Id`. Enqueueing again with the same id inside the
//!   queue's duplicate window (2 minutes by default) stores nothing: the
//!   publish acknowledgement says `duplicate`, and `created` is `false`.
//! - **Uniqueness by key**: a lock in the key-value bucket `<PREFIX>_UNIQUE`,
//!   created with a per-message TTL (nats-server 2.11+). The lock key is the
//!   queue, the task name and a SHA-256 of the chosen payload fields; its
//!   value is the id of the task holding it. Taking the lock is a publish
//!   that expects the key to be empty, so of two producers racing exactly
//!   one wins; the other reads the holder and returns its id. The lock ends
//!   with its TTL, or earlier when a worker releases it at the stage the
//!   task names in its `Natask-Unique-Until` header.
//!
//! `docs/scheduling.md` ("Unique tasks") has the details.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use natask_core::{Task, TaskId};

pub use natask_core::unique::{UniquePolicy, Until};

use crate::client::{initial_state, Client, EnqueueError};
use crate::headers::{UNIQUE, UNIQUE_UNTIL};
use crate::tracking::TaskState;

/// How long the marker left by a released lock stays (the server's minimum).
/// Markers only matter to watchers of the bucket; natask reads none.
const MARKER_TTL: Duration = Duration::from_secs(1);

/// Attempts to take a lock whose key keeps changing under us (a released or
/// expired lock leaves a marker that itself expires).
const ACQUIRE_ATTEMPTS: usize = 5;

/// How one enqueue goes: [`Client::enqueue_with`].
///
/// ```no_run
/// use std::time::Duration;
/// use natask_runtime::{task, Client, EnqueueOptions, TaskId, Unique, Until};
///
/// #[task(queue = "reports")]
/// async fn build_report(tenant: String, month: u32) {}
///
/// # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
/// // a retry of this call (e.g. after a timeout) stores no second task
/// let id = TaskId::new();
/// let task = BuildReport::new("acme".into(), 7);
/// let first = client.enqueue_with(&task, EnqueueOptions::new().id(id)).await?;
/// let again = client.enqueue_with(&task, EnqueueOptions::new().id(id)).await?;
/// assert!(!again.created && again.id == first.id);
///
/// // at most one report per tenant waiting, for up to an hour
/// let unique = Unique::by(&task.tenant, Duration::from_secs(3600)).until(Until::Started);
/// let enqueued = client.enqueue_with(&task, EnqueueOptions::new().unique(unique)).await?;
/// if !enqueued.created {
///     println!("already waiting: {}", enqueued.id);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct EnqueueOptions {
    id: Option<TaskId>,
    unique: Uniqueness,
}

#[derive(Debug, Default)]
enum Uniqueness {
    /// What the task declares (`#[task(unique = "..")]`, [`Task::UNIQUE`]).
    #[default]
    Declared,
    Off,
    Key(Unique),
}

impl EnqueueOptions {
    /// The defaults: a fresh task id, and the uniqueness the task declares.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `id` as the task id and as its deduplication id (`Nats-Msg-Id`):
    /// enqueueing the same id again inside the queue's duplicate window
    /// (see [`QueuePolicy::dedup_window`](crate::QueuePolicy::dedup_window))
    /// stores nothing and answers `created: false` with this id. Keep the id
    /// across the retries of one logical enqueue, e.g. after
    /// [`EnqueueError::Timeout`].
    pub fn id(mut self, id: TaskId) -> Self {
        self.id = Some(id);
        self
    }

    /// Makes this enqueue unique by `unique`'s key, instead of what the task
    /// declares.
    pub fn unique(mut self, unique: Unique) -> Self {
        self.unique = Uniqueness::Key(unique);
        self
    }

    /// Ignores the uniqueness the task declares: this enqueue always stores
    /// a task (and takes no lock).
    pub fn not_unique(mut self) -> Self {
        self.unique = Uniqueness::Off;
        self
    }
}

/// The key and lifetime of a unique enqueue: while a task holds the lock
/// of its key, enqueueing another with the same key stores nothing and
/// returns the holder's id.
pub struct Unique {
    /// The canonical JSON of the key, or why it could not be made.
    key: Result<String, serde_json::Error>,
    policy: UniquePolicy,
}

impl std::fmt::Debug for Unique {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unique")
            .field("key", &self.key.as_deref().ok())
            .field("ttl", &self.policy.ttl)
            .field("until", &self.policy.until)
            .finish()
    }
}

impl Unique {
    /// Unique by `key`, any serialisable value (a field, a tuple of fields,
    /// a string), held for at most `ttl` (at least one second; fractions
    /// are rounded up to whole seconds). The key is hashed together with
    /// the queue and task name, so keys of different tasks never collide.
    pub fn by<K: Serialize + ?Sized>(key: &K, ttl: Duration) -> Unique {
        Unique {
            key: canonical_json(key),
            policy: UniquePolicy { ttl, until: None },
        }
    }

    /// Releases the lock when the task reaches `until`, if that comes
    /// before the TTL runs out.
    pub fn until(mut self, until: Until) -> Unique {
        self.policy.until = Some(until);
        self
    }

    /// The uniqueness `T` declares for `task`, if any.
    fn declared<T: Task>(task: &T) -> Option<Unique> {
        T::UNIQUE.map(|policy| Unique {
            key: canonical_json(&Fields(task)),
            policy,
        })
    }
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The task's id: the new task's, or the existing one's when `created`
    /// is `false`.
    pub id: TaskId,
    /// `true` if this call stored a task; `false` if it found one: a task
    /// holding the same unique key, or the same id enqueued before.
    pub created: bool,
}

/// [`Task::unique_fields`] as a value.
struct Fields<'a, T>(&'a T);

impl<T: Task> Serialize for Fields<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.unique_fields(s)
    }
}

/// `key` as JSON with object keys sorted and no whitespace, so that equal
/// values give equal text whatever the map type's order (and whether
/// serde_json preserves insertion order).
fn canonical_json<K: Serialize + ?Sized>(key: &K) -> Result<String, serde_json::Error> {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let value = serde_json::to_value(key)?;
    let mut out = String::new();
    write(&value, &mut out);
    Ok(out)
}

/// The lock key of a `task` on `queue` with canonical key `json`:
/// `<queue>.<task>.<first 128 bits of SHA-256, hex>`, a valid KV key.
fn lock_key(queue: &str, task: &str, json: &str) -> String {
    let digest = Sha256::digest(json.as_bytes());
    let mut key = format!("{queue}.{task}.");
    for byte in &digest[..16] {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The lock a publish runs under.
pub(crate) struct Lock {
    key: String,
    until: Option<Until>,
}

impl Lock {
    /// Adds `Natask-Unique` (and `Natask-Unique-Until`) to a task's headers.
    pub(crate) fn mark(lock: Option<&Lock>, headers: &mut HeaderMap) {
        if let Some(lock) = lock {
            headers.insert(UNIQUE, lock.key.as_str());
            if let Some(until) = lock.until {
                headers.insert(UNIQUE_UNTIL, until.as_str());
            }
        }
    }
}

enum Acquired {
    /// This call created the lock, at this revision.
    New(u64),
    /// The lock already holds this id: an earlier try of the same enqueue.
    Ours,
    /// Another task holds it.
    Held(TaskId),
}

impl Client {
    /// Enqueues `task` as `options` say; returns its id and whether this
    /// call stored it, or found a task that holds the same unique key or
    /// id (see [`EnqueueOptions`]).
    ///
    /// For a task declared with `#[task(unique = "..")]`, the generated
    /// `enqueue` calls this with the default options.
    pub async fn enqueue_with<T: Task>(
        &self,
        task: &T,
        options: EnqueueOptions,
    ) -> Result<Enqueued, EnqueueError> {
        let span = tracing::info_span!("enqueue", task = T::NAME, queue = T::QUEUE);
        self.bounded::<T, _>(
            self.guarded(task, options, |id, lock| async move {
                let subject = self.subject_of::<T>().await?;
                let (_, headers, payload) =
                    self.prepare_as(task, id, |h| Lock::mark(lock.as_ref(), h))?;
                let stored = self.publish_stored::<T>(subject, headers, payload).await?;
                tracing::debug!(%id, duplicate = stored.duplicate, "enqueued");
                // A duplicate's state was recorded by the publish that stored it.
                if !stored.duplicate && self.tracks(T::QUEUE) {
                    let info = initial_state::<T>(id, TaskState::Queued, stored.sequence);
                    self.record_initial_state(&info).await;
                }
                Ok(stored.duplicate)
            })
            .instrument(span),
        )
        .await
    }

    /// Runs `publish(id, lock)` under the unique lock `options` ask for, if
    /// any; `publish` answers whether JetStream found the message a
    /// duplicate. A lock this call took is released again if `publish`
    /// fails.
    pub(crate) async fn guarded<T, F, Fut>(
        &self,
        task: &T,
        options: EnqueueOptions,
        publish: F,
    ) -> Result<Enqueued, EnqueueError>
    where
        T: Task,
        F: FnOnce(TaskId, Option<Lock>) -> Fut,
        Fut: Future<Output = Result<bool, EnqueueError>>,
    {
        let id = options.id.unwrap_or_else(TaskId::new);
        let unique = match options.unique {
            Uniqueness::Declared => Unique::declared(task),
            Uniqueness::Off => None,
            Uniqueness::Key(unique) => Some(unique),
        };
        let Some(unique) = unique else {
            let duplicate = publish(id, None).await?;
            return Ok(Enqueued {
                id,
                created: !duplicate,
            });
        };
        let json = unique.key.map_err(|source| EnqueueError::Encode {
            task: T::NAME,
            source,
        })?;
        let ttl = unique.policy.ttl;
        if ttl < Duration::from_secs(1) {
            return Err(EnqueueError::UniqueTtl { task: T::NAME, ttl });
        }
        let store = self.unique_store::<T>().await?;
        let lock = Lock {
            key: lock_key(T::QUEUE, T::NAME, &json),
            until: unique.policy.until,
        };
        let acquired = acquire(self.jetstream(), &store, self.names(), &lock.key, id, ttl)
            .await
            .map_err(|source| EnqueueError::Unique {
                task: T::NAME,
                bucket: self.names().unique_bucket(),
                source,
            })?;
        let revision = match acquired {
            Acquired::Held(holder) => {
                tracing::debug!(%holder, key = %lock.key, "a task with this unique key exists");
                return Ok(Enqueued {
                    id: holder,
                    created: false,
                });
            }
            Acquired::Ours => None,
            Acquired::New(revision) => Some(revision),
        };
        let key = lock.key.clone();
        match publish(id, Some(lock)).await {
            Ok(duplicate) => Ok(Enqueued {
                id,
                created: !duplicate,
            }),
            Err(e) => {
                if let Some(revision) = revision {
                    if let Err(release) = store
                        .purge_expect_revision_with_ttl(&key, revision, MARKER_TTL)
                        .await
                    {
                        tracing::warn!(%key, error = %release, "the task was not stored and its unique lock could not be released; it ends with its TTL");
                    }
                }
                Err(e)
            }
        }
    }

    /// The bucket of unique locks, created on first use.
    async fn unique_store<T: Task>(&self) -> Result<kv::Store, EnqueueError> {
        self.unique_cell()
            .get_or_try_init(|| async {
                let bucket = self.names().unique_bucket();
                let error = |source: async_nats::Error| EnqueueError::Unique {
                    task: T::NAME,
                    bucket: bucket.clone(),
                    source,
                };
                let js = self.jetstream();
                let store = match js.get_key_value(&bucket).await {
                    Ok(store) => store,
                    Err(_) => js
                        .create_key_value(kv::Config {
                            bucket: bucket.clone(),
                            description: "natask: locks of unique tasks (key: queue.task.hash, value: the holder's task id)".to_owned(),
                            history: 1,
                            storage: jetstream::stream::StorageType::File,
                            limit_markers: Some(MARKER_TTL),
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| {
                            if e.kind()
                                == jetstream::context::CreateKeyValueErrorKind::LimitMarkersNotSupported
                            {
                                self.unique_unsupported::<T>()
                            } else {
                                error(e.into())
                            }
                        })?,
                };
                let status = store.status().await.map_err(|e| error(e.into()))?;
                if !status.info.config.allow_message_ttl {
                    return Err(if self.nats().server_info().version.starts_with("2.10.") {
                        self.unique_unsupported::<T>()
                    } else {
                        error(
                            format!(
                                "bucket `{bucket}` exists without per-message TTL; delete it (`nats kv del {bucket}`) and natask creates it again"
                            )
                            .into(),
                        )
                    });
                }
                Ok(store)
            })
            .await
            .cloned()
    }

    fn unique_unsupported<T: Task>(&self) -> EnqueueError {
        EnqueueError::UniqueUnsupported {
            task: T::NAME,
            server_version: self.nats().server_info().version,
        }
    }
}

/// Takes the lock `key` for `id` for `ttl`, or finds who holds it.
async fn acquire(
    js: &jetstream::Context,
    store: &kv::Store,
    names: &natask_core::wire::Names,
    key: &str,
    id: TaskId,
    ttl: Duration,
) -> Result<Acquired, async_nats::Error> {
    let subject = format!("$KV.{}.{key}", names.unique_bucket());
    let value = id.to_string();
    // Whole seconds, rounded up: the resolution of `Nats-TTL`.
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let mut expected = 0;
    for _ in 0..ACQUIRE_ATTEMPTS {
        // `kv::Store::create_with_ttl` would do, were it not to drop the TTL
        // when the key holds a delete marker (async-nats 0.51), which is
        // exactly the state of a released or expired lock.
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        headers.insert(
            async_nats::header::NATS_MESSAGE_TTL,
            seconds.to_string().as_str(),
        );
        let ack = js
            .publish_with_headers(subject.clone(), headers, value.clone().into())
            .await?
            .await;
        match ack {
            Ok(ack) => return Ok(Acquired::New(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
            Err(e) => return Err(e.into()),
        }
        match store.entry(key).await? {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let holder = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|s| s.parse::<TaskId>().ok())
                    .ok_or_else(|| {
                        format!("the lock `{key}` holds no task id; was it written by hand?")
                    })?;
                return Ok(if holder == id {
                    Acquired::Ours
                } else {
                    Acquired::Held(holder)
                });
            }
            Some(marker) => expected = marker.revision,
            None => expected = 0,
        }
    }
    Err(format!("the lock `{key}` kept changing while it was taken; try again").into())
}

/// Releases the lock of the task in `msg` (id `id`) if its
/// `Natask-Unique-Until` stage is one `reached` accepts and the lock still
/// holds this task (after its TTL another task may hold the key).
async fn release(
    client: &Client,
    headers: Option<&HeaderMap>,
    id: TaskId,
    reached: impl Fn(Until) -> bool,
) {
    let Some(headers) = headers else { return };
    let (Some(key), Some(until)) = (
        headers.get(UNIQUE).map(|v| v.as_str()),
        headers
            .get(UNIQUE_UNTIL)
            .and_then(|v| Until::parse(v.as_str())),
    ) else {
        return;
    };
    if !reached(until) {
        return;
    }
    let store = match client.unique_cell().get() {
        Some(store) => store.clone(),
        None => match client
            .jetstream()
            .get_key_value(client.names().unique_bucket())
            .await
        {
            Ok(store) => client
                .unique_cell()
                .get_or_init(|| async { store })
                .await
                .clone(),
            Err(e) => {
                tracing::warn!(%id, key, error = %e, "cannot open the bucket of unique locks; the lock ends with its TTL");
                return;
            }
        },
    };
    match store.entry(key).await {
        Ok(Some(entry))
            if entry.operation == kv::Operation::Put
                && entry.value.as_ref() == id.to_string().as_bytes() =>
        {
            match store
                .purge_expect_revision_with_ttl(key, entry.revision, MARKER_TTL)
                .await
            {
                Ok(()) => tracing::debug!(%id, key, %until, "unique lock released"),
                Err(e) => {
                    tracing::warn!(%id, key, error = %e, "cannot release the unique lock; it ends with its TTL")
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(%id, key, error = %e, "cannot read the unique lock; it ends with its TTL")
        }
    }
}

/// A worker is about to run an attempt of the task in `msg`: releases its
/// lock if it is held until the task starts.
pub(crate) async fn started(client: &Client, msg: &jetstream::Message, id: TaskId) {
    release(client, msg.headers.as_ref(), id, |until| {
        until == Until::Started
    })
    .await;
}

/// The task with `headers` will never run (it was cancelled or expired):
/// releases its lock, whatever stage it is held until.
pub(crate) async fn abandoned(client: &Client, headers: Option<&HeaderMap>, id: TaskId) {
    release(client, headers, id, |_| true).await;
}

/// A worker settled an attempt of the task in `msg`: releases its lock if
/// it is held until the task succeeds (`succeeded`) or finishes (`for_good`:
/// succeeded or dead-lettered).
pub(crate) async fn settled(
    client: &Client,
    msg: &jetstream::Message,
    id: TaskId,
    succeeded: bool,
    for_good: bool,
) {
    release(client, msg.headers.as_ref(), id, |until| match until {
        Until::Started => false,
        Until::Succeeded => succeeded,
        Until::Finished => for_good,
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_are_canonical() {
        let a: HashMap<&str, u8> = [("b", 2), ("a", 1), ("c", 3)].into();
        let b: HashMap<&str, u8> = [("c", 3), ("a", 1), ("b", 2)].into();
        assert_eq!(canonical_json(&a).unwrap(), r#"{"a":1,"b":2,"c":3}"#);
        assert_eq!(canonical_json(&a).unwrap(), canonical_json(&b).unwrap());
        assert_eq!(
            canonical_json(&("acme", 7, [1.5])).unwrap(),
            r#"["acme",7,[1.5]]"#
        );
    }

    #[test]
    fn lock_keys_are_valid_kv_keys_and_stable() {
        let key = lock_key("reports", "build-report", r#"["acme",7]"#);
        // a change here breaks the uniqueness of tasks enqueued before an upgrade
        assert_eq!(key, "reports.build-report.133605be9a69d72a0cffb7fb31755937");
        assert!(key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_ne!(key, lock_key("reports", "build-report", r#"["acme",8]"#));
    }
}
