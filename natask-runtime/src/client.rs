//! The producer side: connecting and enqueueing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use async_nats::{HeaderMap, Subject};

use natask_core::name::{self, NameError};
use natask_core::wire::{self, Names};
use natask_core::{Task, TaskId};

use crate::headers::{CONTENT_TYPE, ENQUEUED_AT, FORMAT, ID, MSG_ID, TASK};
use crate::middleware::{self, Enqueue, Middleware, Rejected};
use crate::policy::{Drift, Provisioning, QueuePolicy};
use crate::provision::{self, ProvisionError};
use crate::tracking::{TaskInfo, TaskState};
use crate::unique::{EnqueueOptions, Enqueued};

/// How long requests wait by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to NATS that enqueues tasks. Cheap to clone; share one.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = natask_runtime::Client::connect("nats://127.0.0.1:4222").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    nats: async_nats::Client,
    js: jetstream::Context,
    names: Names,
    timeout: Duration,
    middleware: Vec<Arc<dyn Middleware>>,
    /// Streams known to exist; provisioning is skipped for them.
    ensured: Mutex<HashSet<String>>,
    /// Queues whose stream is known to accept message schedules.
    schedulable: Mutex<HashSet<&'static str>>,
    /// The subject of each (queue, task) whose stream is known to exist.
    subjects: Mutex<HashMap<(&'static str, &'static str), Subject>>,
    /// The server's `max_payload`, once known (0 before).
    max_payload: AtomicUsize,
    /// Policies registered with [`Client::with_queue`], by queue name.
    policies: Arc<HashMap<String, Arc<QueuePolicy>>>,
    /// The bucket of unique locks, once opened (`crate::unique`).
    unique: tokio::sync::OnceCell<jetstream::kv::Store>,
    /// Whether missing streams and consumers may be created.
    provisioning: Provisioning,
    /// Policy differences already logged, so re-provisioning after a
    /// reconnect does not repeat them.
    warned: Mutex<HashSet<String>>,
    /// How long task states are kept.
    retention: Duration,
    /// The bucket of task states, once opened.
    task_store: tokio::sync::OnceCell<jetstream::kv::Store>,
}

/// What a client is configured with; each `with_*` method changes one part.
struct Settings {
    names: Names,
    timeout: Duration,
    middleware: Vec<Arc<dyn Middleware>>,
    policies: Arc<HashMap<String, Arc<QueuePolicy>>>,
    provisioning: Provisioning,
    retention: Duration,
}

/// Connecting to NATS failed.
#[derive(Debug, thiserror::Error)]
#[error("could not connect to NATS at `{url}`; check the URL, that nats-server is running, and the credentials")]
pub struct ConnectError {
    url: String,
    #[source]
    source: async_nats::ConnectError,
}

/// A task could not be enqueued. Nothing was stored unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// A middleware refused the task.
    #[error("task `{task}` was refused by a middleware: {reason}")]
    Rejected {
        /// The task's name.
        task: &'static str,
        /// The middleware's reason.
        reason: String,
    },
    /// The payload could not be serialised to JSON.
    #[error("task `{task}` could not be encoded as JSON")]
    Encode {
        /// The task's name.
        task: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The message is larger than the server accepts.
    #[error(
        "task `{task}` is {size} bytes with its headers, more than the server's limit of {limit} bytes \
         (max_payload); store large data elsewhere and enqueue a reference to it"
    )]
    TooLarge {
        /// The task's name.
        task: &'static str,
        /// Payload plus headers, in bytes.
        size: usize,
        /// The server's `max_payload`.
        limit: usize,
    },
    /// The queue's stream could not be created or found.
    #[error("the stream of queue `{queue}` is not available")]
    Provision {
        /// The queue.
        queue: &'static str,
        /// What went wrong.
        #[source]
        source: ProvisionError,
    },
    /// A delayed task was enqueued on a server without message schedules.
    /// Nothing was stored.
    #[error(
        "queue `{queue}` cannot hold delayed tasks: nats-server {server_version} ignores message \
         schedules, which need nats-server 2.12 or newer; upgrade the server, or enqueue without a delay"
    )]
    SchedulesUnsupported {
        /// The queue.
        queue: &'static str,
        /// The version the server reported.
        server_version: String,
    },
    /// A delayed task is due later than the year 9999, which JetStream's
    /// schedules cannot express. Nothing was stored.
    #[error("task `{task}` is due after the year 9999; use a shorter delay")]
    TooFarAhead {
        /// The task's name.
        task: &'static str,
    },
    /// No answer within the client's timeout, e.g. while NATS is
    /// unreachable. The task may or may not have been stored.
    #[error(
        "task `{task}` on queue `{queue}` was not confirmed within {timeout:?}; is NATS reachable?"
    )]
    Timeout {
        /// The task's name.
        task: &'static str,
        /// The queue.
        queue: &'static str,
        /// The client's timeout.
        timeout: Duration,
    },
    /// A unique task was enqueued on a server without per-message TTL,
    /// which its lock needs. Nothing was stored.
    #[error(
        "task `{task}` is unique, and its lock needs per-message TTL, which nats-server {server_version} \
         does not have; unique tasks need nats-server 2.11 or newer: upgrade the server, or enqueue \
         without uniqueness (`EnqueueOptions::not_unique`)"
    )]
    UniqueUnsupported {
        /// The task's name.
        task: &'static str,
        /// The version the server reported.
        server_version: String,
    },
    /// The lock of a unique task would be held for less than a second, the
    /// resolution of the server's per-message TTL. Nothing was stored.
    #[error(
        "the unique lock of task `{task}` would be held for {ttl:?}; hold it for at least 1 s"
    )]
    UniqueTtl {
        /// The task's name.
        task: &'static str,
        /// The TTL asked for.
        ttl: Duration,
    },
    /// The lock of a unique task could not be taken or read (in time).
    /// Nothing was stored.
    #[error("the unique lock of task `{task}` could not be taken in bucket `{bucket}`")]
    Unique {
        /// The task's name.
        task: &'static str,
        /// The key-value bucket of locks.
        bucket: String,
        /// What went wrong.
        #[source]
        source: async_nats::Error,
    },
    /// The queue holds as many tasks (or bytes) as its policy allows
    /// ([`QueuePolicy::max_tasks`], [`QueuePolicy::max_bytes`]) and refuses
    /// more ([`WhenFull::Refuse`](crate::WhenFull::Refuse)). Nothing was
    /// stored, and nothing queued was lost.
    #[error(
        "queue `{queue}` is full ({limit}), so task `{task}` was not stored and no queued task \
         was lost; enqueue it again once workers have taken some, or raise the queue's \
         `max_tasks`/`max_bytes` (Client::update_queue applies a raised limit)"
    )]
    QueueFull {
        /// The task's name.
        task: &'static str,
        /// The queue.
        queue: &'static str,
        /// The limit JetStream reported, e.g. `maximum messages exceeded`.
        limit: String,
    },
    /// JetStream did not acknowledge the task (in time). It may or may not
    /// have been stored; enqueueing the same payload again is safe only for
    /// idempotent tasks.
    #[error("JetStream did not confirm task `{task}` on queue `{queue}`")]
    Publish {
        /// The task's name.
        task: &'static str,
        /// The queue.
        queue: &'static str,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

impl Client {
    /// Connects to the NATS server at `url` (e.g. `nats://127.0.0.1:4222`;
    /// credentials may be given as `nats://user:password@host:port`).
    pub async fn connect(url: &str) -> Result<Client, ConnectError> {
        let mut options =
            async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
        // async-nats does not read credentials from the URL itself.
        let (address, credentials) = split_credentials(url);
        match credentials {
            Some((user, Some(password))) => options = options.user_and_password(user, password),
            Some((token, None)) => options = options.token(token),
            None => {}
        }
        let nats = options
            .connect(address.as_str())
            .await
            .map_err(|source| ConnectError {
                url: redact(url),
                source,
            })?;
        Ok(Client::from_nats(nats))
    }

    /// Uses an existing async-nats connection (for custom TLS, auth or
    /// reconnect settings).
    pub fn from_nats(nats: async_nats::Client) -> Client {
        Self::build(
            nats,
            Settings {
                names: Names::default(),
                timeout: DEFAULT_TIMEOUT,
                middleware: crate::runtime::builtin_middleware(),
                policies: Arc::default(),
                provisioning: Provisioning::default(),
                retention: crate::tracking::DEFAULT_TASK_RETENTION,
            },
        )
    }

    fn build(nats: async_nats::Client, settings: Settings) -> Client {
        let Settings {
            names,
            timeout,
            middleware,
            policies,
            provisioning,
            retention,
        } = settings;
        let mut js = jetstream::new(nats.clone());
        js.set_timeout(timeout);
        Client {
            inner: Arc::new(Inner {
                nats,
                js,
                names,
                timeout,
                middleware,
                ensured: Mutex::new(HashSet::new()),
                schedulable: Mutex::new(HashSet::new()),
                subjects: Mutex::new(HashMap::new()),
                max_payload: AtomicUsize::new(0),
                policies,
                unique: tokio::sync::OnceCell::new(),
                provisioning,
                warned: Mutex::new(HashSet::new()),
                retention,
                task_store: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// A new client on the same connection, with this one's settings as
    /// `change` leaves them (and empty caches).
    fn with(&self, change: impl FnOnce(&mut Settings)) -> Client {
        let mut settings = Settings {
            names: self.inner.names.clone(),
            timeout: self.inner.timeout,
            middleware: self.inner.middleware.clone(),
            policies: Arc::clone(&self.inner.policies),
            provisioning: self.inner.provisioning,
            retention: self.inner.retention,
        };
        change(&mut settings);
        Self::build(self.inner.nats.clone(), settings)
    }

    pub(crate) fn with_retention(self, retention: Duration) -> Client {
        self.with(|s| s.retention = retention)
    }

    pub(crate) fn task_retention(&self) -> Duration {
        self.inner.retention
    }

    pub(crate) fn task_store_cell(&self) -> &tokio::sync::OnceCell<jetstream::kv::Store> {
        &self.inner.task_store
    }

    /// Registers the policy of one queue (see [`QueuePolicy`]); a second
    /// policy for the same queue replaces the first. Every producer and
    /// runtime built from the returned client provisions the queue with it
    /// (checking it with [`QueuePolicy::validate`] first), and attaches to
    /// an existing stream or consumer without rewriting it (see
    /// [`update_queue`](Self::update_queue)).
    pub fn with_queue(self, policy: QueuePolicy) -> Result<Client, NameError> {
        name::check(&policy.name)?;
        let mut policies = (*self.inner.policies).clone();
        policies.insert(policy.name.clone(), Arc::new(policy));
        Ok(self.with(|s| s.policies = Arc::new(policies)))
    }

    /// Whether this client (and every runtime built from it) may create a
    /// missing queue stream or consumer (default [`Provisioning::Create`]).
    /// With [`Provisioning::NoCreate`], for accounts whose streams an
    /// operator manages, a missing one is an error that names it; existing
    /// ones are attached to either way.
    pub fn with_provisioning(self, provisioning: Provisioning) -> Client {
        self.with(|s| s.provisioning = provisioning)
    }

    pub(crate) fn provisioning(&self) -> Provisioning {
        self.inner.provisioning
    }

    /// Whether `warning` is logged for the first time by this client.
    pub(crate) fn first_warning(&self, warning: String) -> bool {
        self.inner
            .warned
            .lock()
            .expect("warned set poisoned")
            .insert(warning)
    }

    /// Where the live stream and consumer of `queue` differ from its
    /// [policy](Self::queue_policy); empty when they match. Read-only.
    ///
    /// The consumer counts only once it exists (a runtime serving the
    /// queue creates it), and its `ack_wait` only if the policy sets one
    /// (otherwise the runtime's [`ack_wait`](crate::RuntimeBuilder::ack_wait)
    /// applies, which this client does not know).
    pub async fn queue_drift(&self, queue: &str) -> Result<Vec<Drift>, ProvisionError> {
        provision::queue_drift(self, queue).await
    }

    /// Updates the stream and consumer of `queue` to its
    /// [policy](Self::queue_policy) and returns what was changed (empty if
    /// nothing differed). Provisioning alone never changes an existing
    /// stream or consumer; this does.
    ///
    /// A missing stream is created first (unless
    /// [`Provisioning::NoCreate`]); a missing consumer is left to the
    /// runtime, which creates it from the policy. Settings the server cannot
    /// change on an existing stream (storage, retention) fail with
    /// [`ProvisionError::Immutable`] and nothing is changed; more replicas
    /// than the cluster has servers fail with the server's error.
    ///
    /// ```no_run
    /// use natask_runtime::{Client, QueuePolicy};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::connect("nats://127.0.0.1:4222")
    ///     .await?
    ///     .with_queue(QueuePolicy::new("emails").max_in_flight(50))?;
    /// for change in client.update_queue("emails").await? {
    ///     println!("{change}"); // max_in_flight: live 10000, wanted 50
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn update_queue(&self, queue: &str) -> Result<Vec<Drift>, ProvisionError> {
        provision::update_queue(self, queue).await
    }

    /// The policy of `queue`: the one registered with
    /// [`with_queue`](Self::with_queue), or the defaults.
    pub fn queue_policy(&self, queue: &str) -> Arc<QueuePolicy> {
        self.inner
            .policies
            .get(queue)
            .cloned()
            .unwrap_or_else(|| Arc::new(QueuePolicy::new(queue)))
    }

    /// Whether tasks of `queue` have their state tracked (cheap).
    pub(crate) fn tracks(&self, queue: &str) -> bool {
        self.inner.policies.get(queue).is_none_or(|p| p.tracking)
    }

    /// Uses `prefix` instead of `natask` for every subject and stream, so
    /// that two applications can share one NATS account.
    pub fn with_prefix(self, prefix: &str) -> Result<Client, NameError> {
        name::check(prefix)?;
        Ok(self.with(|s| s.names = Names::new(prefix)))
    }

    /// How long `enqueue` and JetStream requests wait for an answer
    /// (default 5 s). While NATS is unreachable, `enqueue` fails after this
    /// long with [`EnqueueError::Timeout`] instead of hanging.
    pub fn with_timeout(self, timeout: Duration) -> Client {
        self.with(|s| s.timeout = timeout)
    }

    /// Adds middleware whose [`on_enqueue`](Middleware::on_enqueue) runs
    /// before every task this client publishes, in the order added.
    pub fn with_middleware(self, middleware: impl Middleware) -> Client {
        self.with(|s| s.middleware.push(Arc::new(middleware)))
    }

    /// Whether the connection to NATS is up. Cheap; no request is made.
    pub fn is_ready(&self) -> bool {
        self.inner.nats.connection_state() == async_nats::connection::State::Connected
    }

    /// The underlying NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    /// The JetStream context natask uses.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// How long enqueueing waits for JetStream's confirmation.
    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The subject and stream names in use.
    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// Enqueues `task`; returns its id once JetStream has stored it.
    ///
    /// The generated `SendEmail { .. }.enqueue(&client)` calls this. For a
    /// unique task (`#[task(unique = "..")]`) whose key is held, nothing is
    /// stored: the answer has the holder's id and `created: false`.
    pub async fn enqueue<T: Task>(&self, task: &T) -> Result<Enqueued, EnqueueError> {
        self.enqueue_with(task, EnqueueOptions::new()).await
    }

    /// Runs one enqueue of a `T` within the client's timeout.
    pub(crate) async fn bounded<T: Task, R>(
        &self,
        enqueue: impl std::future::Future<Output = Result<R, EnqueueError>>,
    ) -> Result<R, EnqueueError> {
        tokio::time::timeout(self.inner.timeout, enqueue)
            .await
            .unwrap_or_else(|_| Err(self.timed_out::<T>()))
    }

    /// A `T` was not confirmed within the client's timeout.
    pub(crate) fn timed_out<T: Task>(&self) -> EnqueueError {
        EnqueueError::Timeout {
            task: T::NAME,
            queue: T::QUEUE,
            timeout: self.inner.timeout,
        }
    }

    /// Publishes one prepared task of type `T` on `subject` and waits until
    /// JetStream has stored it, or found it a duplicate (same `Nats-Msg-Id`
    /// inside the window) and stored nothing.
    pub(crate) async fn publish_stored<T: Task>(
        &self,
        subject: Subject,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<Stored, EnqueueError> {
        let ack = self
            .inner
            .js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| publish_error::<T>(e.into()))?
            .await
            .map_err(|e| publish_error::<T>(e.into()))?;
        #[cfg(feature = "metrics")]
        if !ack.duplicate {
            crate::metrics::enqueued(T::QUEUE, T::NAME);
        }
        Ok(Stored {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// The bucket of unique locks, once opened.
    pub(crate) fn unique_cell(&self) -> &tokio::sync::OnceCell<jetstream::kv::Store> {
        &self.inner.unique
    }

    /// Everything before the publish: the body, the headers, the
    /// middleware and the size check.
    pub(crate) fn prepare<T: Task>(
        &self,
        task: &T,
    ) -> Result<(TaskId, HeaderMap, Vec<u8>), EnqueueError> {
        self.prepare_with(task, |_| {})
    }

    /// [`prepare`](Self::prepare), with `extra` adding headers before the
    /// middleware runs and the size is checked.
    pub(crate) fn prepare_with<T: Task>(
        &self,
        task: &T,
        extra: impl FnOnce(&mut HeaderMap),
    ) -> Result<(TaskId, HeaderMap, Vec<u8>), EnqueueError> {
        self.prepare_as(task, TaskId::new(), extra)
    }

    /// [`prepare_with`](Self::prepare_with), for the task id `id`.
    pub(crate) fn prepare_as<T: Task>(
        &self,
        task: &T,
        id: TaskId,
        extra: impl FnOnce(&mut HeaderMap),
    ) -> Result<(TaskId, HeaderMap, Vec<u8>), EnqueueError> {
        let payload = serde_json::to_vec(task).map_err(|source| EnqueueError::Encode {
            task: T::NAME,
            source,
        })?;
        let mut headers = task_headers(T::NAME, id);
        extra(&mut headers);
        let mut enqueue = Enqueue {
            task: T::NAME,
            queue: T::QUEUE,
            id,
            payload: &payload,
            headers: &mut headers,
        };
        middleware::enqueue_chain(&self.inner.middleware, &mut enqueue).map_err(
            |Rejected(reason)| EnqueueError::Rejected {
                task: T::NAME,
                reason,
            },
        )?;
        let size = payload.len() + header_len(&headers);
        let limit = self.max_payload();
        if limit > 0 && size > limit {
            return Err(EnqueueError::TooLarge {
                task: T::NAME,
                size,
                limit,
            });
        }
        Ok((id, headers, payload))
    }

    fn max_payload(&self) -> usize {
        let known = self.inner.max_payload.load(Ordering::Relaxed);
        if known > 0 {
            return known;
        }
        // Unknown until the first connection has been made.
        let limit = self.inner.nats.server_info().max_payload;
        self.inner.max_payload.store(limit, Ordering::Relaxed);
        limit
    }

    /// The subject of task `T`, once its queue's stream is known to exist.
    pub(crate) async fn subject_of<T: Task>(&self) -> Result<Subject, EnqueueError> {
        let key = (T::QUEUE, T::NAME);
        if let Some(subject) = self
            .inner
            .subjects
            .lock()
            .expect("subject cache poisoned")
            .get(&key)
        {
            return Ok(subject.clone());
        }
        self.ensure_queue(T::QUEUE).await?;
        let subject = Subject::from(self.inner.names.task_subject(T::QUEUE, T::NAME));
        self.inner
            .subjects
            .lock()
            .expect("subject cache poisoned")
            .insert(key, subject.clone());
        Ok(subject)
    }

    async fn ensure_queue(&self, queue: &'static str) -> Result<(), EnqueueError> {
        self.ensure_stream_of(queue)
            .await
            .map_err(|source| EnqueueError::Provision { queue, source })
    }

    pub(crate) async fn ensure_stream_of(&self, queue: &str) -> Result<(), ProvisionError> {
        let stream = self.inner.names.queue_stream(queue);
        if self.is_ensured(&stream) {
            return Ok(());
        }
        provision::queue_stream(self, queue).await?;
        self.mark_ensured(stream);
        Ok(())
    }

    /// Makes sure the stream of `queue` accepts delayed tasks (once per
    /// client and queue).
    pub(crate) async fn ensure_schedules(&self, queue: &'static str) -> Result<(), EnqueueError> {
        if self
            .inner
            .schedulable
            .lock()
            .expect("schedulable set poisoned")
            .contains(queue)
        {
            return Ok(());
        }
        let honoured = provision::schedules(self, queue)
            .await
            .map_err(|source| EnqueueError::Provision { queue, source })?;
        if !honoured {
            return Err(EnqueueError::SchedulesUnsupported {
                queue,
                server_version: self.inner.nats.server_info().version,
            });
        }
        self.mark_ensured(self.inner.names.queue_stream(queue));
        self.inner
            .schedulable
            .lock()
            .expect("schedulable set poisoned")
            .insert(queue);
        Ok(())
    }

    pub(crate) fn is_ensured(&self, stream: &str) -> bool {
        self.inner
            .ensured
            .lock()
            .expect("ensured set poisoned")
            .contains(stream)
    }

    pub(crate) fn mark_ensured(&self, stream: String) {
        self.inner
            .ensured
            .lock()
            .expect("ensured set poisoned")
            .insert(stream);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("prefix", &self.inner.names.prefix())
            .field("state", &self.inner.nats.connection_state())
            .finish()
    }
}

/// The headers every message of task `task` carries, whoever publishes it
/// (see `docs/wire-format.md`).
pub(crate) fn kind_headers(task: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(TASK, task);
    headers.insert(FORMAT, wire::FORMAT_VERSION);
    headers.insert(CONTENT_TYPE, wire::CONTENT_TYPE_JSON);
    headers
}

/// A task's headers as a producer sends them: the kind's, plus its id
/// (also the deduplication id) and the enqueue time.
fn task_headers(task: &str, id: TaskId) -> HeaderMap {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = &*id.as_uuid().hyphenated().encode_lower(&mut buffer);
    let mut headers = kind_headers(task);
    headers.insert(MSG_ID, id);
    headers.insert(ID, id);
    headers.insert(
        ENQUEUED_AT,
        unix_millis(SystemTime::now()).to_string().as_str(),
    );
    headers
}

/// What JetStream answered to a task's publish.
pub(crate) struct Stored {
    /// The task's stream sequence (the original's, for a duplicate).
    pub(crate) sequence: u64,
    /// The stream had stored a message with this `Nats-Msg-Id` within its
    /// duplicate window, so this one was dropped.
    pub(crate) duplicate: bool,
}

/// The state a producer records for a task of type `T` it just stored.
pub(crate) fn initial_state<T: Task>(id: TaskId, state: TaskState, seq: u64) -> TaskInfo {
    let mut info = TaskInfo::new(id, T::NAME, T::QUEUE, state);
    info.enqueued_at = Some(SystemTime::now());
    info.seq = Some(seq);
    info
}

pub(crate) fn publish_error<T: Task>(source: async_nats::Error) -> EnqueueError {
    if let Some(limit) = full_queue(&*source) {
        return EnqueueError::QueueFull {
            task: T::NAME,
            queue: T::QUEUE,
            limit,
        };
    }
    EnqueueError::Publish {
        task: T::NAME,
        queue: T::QUEUE,
        source,
    }
}

/// The limit a stream with discard-new refused a message for: JetStream
/// answers error 10077 ("maximum messages exceeded", "maximum bytes
/// exceeded").
fn full_queue(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(js) = e.downcast_ref::<jetstream::Error>() {
            // async-nats shows the description only through Display.
            let shown = js.to_string();
            let description = shown.split(" (code").next().unwrap_or_default();
            if js.error_code() == jetstream::ErrorCode::STREAM_STORE_FAILED
                && description.starts_with("maximum")
            {
                return Some(description.to_owned());
            }
        }
        next = e.source();
    }
    None
}

/// Bytes the headers take on the wire (`NATS/1.0\r\n`, `Name: value\r\n`, `\r\n`).
fn header_len(headers: &HeaderMap) -> usize {
    let fields: usize = headers
        .iter()
        .map(|(name, values)| {
            values
                .iter()
                .map(|v| AsRef::<str>::as_ref(name).len() + 2 + v.as_str().len() + 2)
                .sum::<usize>()
        })
        .sum();
    10 + fields + 2
}

pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Splits `scheme://user:password@host` into `scheme://host` and the credentials.
fn split_credentials(url: &str) -> (String, Option<(String, Option<String>)>) {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let address = format!("{}{}", &url[..scheme + 3], &url[at + 1..]);
            let credentials = match userinfo.split_once(':') {
                Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
                None => (userinfo.to_owned(), None),
            };
            (address, Some(credentials))
        }
        _ => (url.to_owned(), None),
    }
}

/// Drops the password from a URL before it appears in an error.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_errors() {
        assert_eq!(redact("nats://u:secret@h:4222"), "nats://u:***@h:4222");
        assert_eq!(redact("nats://h:4222"), "nats://h:4222");
    }

    #[test]
    fn credentials_come_out_of_the_url() {
        assert_eq!(
            split_credentials("nats://u:p:w@h:1"),
            (
                "nats://h:1".to_owned(),
                Some(("u".to_owned(), Some("p:w".to_owned())))
            )
        );
        assert_eq!(
            split_credentials("tls://tok@h"),
            ("tls://h".to_owned(), Some(("tok".to_owned(), None)))
        );
        assert_eq!(split_credentials("h:4222"), ("h:4222".to_owned(), None));
    }

    #[test]
    fn header_length_counts_every_field() {
        let mut h = HeaderMap::new();
        h.insert("A", "bc");
        assert_eq!(header_len(&h), 10 + "A: bc\r\n".len() + 2);
    }
}
