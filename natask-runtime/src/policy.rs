//! A queue's policy, declared once in code and applied wherever the queue
//! is provisioned (by a [`Client`](crate::Client) or a
//! [`Runtime`](crate::Runtime)).

use std::time::Duration;

/// Fleet-wide in-flight limit when [`QueuePolicy::max_in_flight`] is not set.
pub const DEFAULT_MAX_IN_FLIGHT: i64 = 10_000;

/// The most tasks a worker keeps pulled ahead of its free handler slots
/// per queue, while the queue's tasks are short (see
/// [`QueuePolicy::prefetch`]).
pub const DEFAULT_PREFETCH: usize = 128;
/// Publish deduplication window when [`QueuePolicy::dedup_window`] is not set.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// Where a queue's stream keeps its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Storage {
    /// On disk: tasks survive a server restart (the default).
    #[default]
    File,
    /// In memory: faster, but a server restart loses every queued task.
    Memory,
}

/// What a full queue (see [`QueuePolicy::max_tasks`] and
/// [`QueuePolicy::max_bytes`]) does with one more task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// `enqueue` fails with
    /// [`EnqueueError::QueueFull`](crate::EnqueueError::QueueFull) and
    /// nothing queued is lost (the default). JetStream holds no delayed
    /// tasks in such a queue (message schedules need a stream that discards
    /// old messages), so a queue with a limit and `Refuse` cannot take
    /// `enqueue_in`, `enqueue_at` or cron tasks.
    #[default]
    Refuse,
    /// The oldest queued task is deleted to make room. Tasks are lost
    /// silently; only for queues where a newer task supersedes older ones.
    DropOldest,
}

/// How a queue is set up and served. Register it on the client with
/// [`Client::with_queue`](crate::Client::with_queue); every producer and
/// worker built from that client applies it.
///
/// ```
/// use std::time::Duration;
/// use natask_runtime::QueuePolicy;
///
/// let emails = QueuePolicy::new("emails")
///     .max_in_flight(20)                       // across every worker process
///     .validity(Duration::from_secs(3600))     // not started within an hour: expired
///     .max_tasks(1_000_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QueuePolicy {
    pub(crate) name: String,
    pub(crate) concurrency: Option<usize>,
    pub(crate) max_in_flight: i64,
    pub(crate) retries: Option<u32>,
    pub(crate) ack_wait: Option<Duration>,
    pub(crate) validity: Option<Duration>,
    pub(crate) storage: Storage,
    pub(crate) replicas: Option<usize>,
    pub(crate) max_tasks: Option<i64>,
    pub(crate) max_bytes: Option<i64>,
    pub(crate) when_full: WhenFull,
    pub(crate) dedup_window: Duration,
    pub(crate) tracking: bool,
    pub(crate) track_queued: bool,
    pub(crate) prefetch: usize,
}

impl QueuePolicy {
    /// The defaults for queue `name`: file storage, the client's replicas
    /// (see [`Client::with_replicas`](crate::Client::with_replicas)), no size
    /// limit, [`DEFAULT_MAX_IN_FLIGHT`], [`DEFAULT_DEDUP_WINDOW`], task
    /// tracking on.
    pub fn new(name: impl Into<String>) -> Self {
        QueuePolicy {
            name: name.into(),
            concurrency: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retries: None,
            ack_wait: None,
            validity: None,
            storage: Storage::File,
            replicas: None,
            max_tasks: None,
            max_bytes: None,
            when_full: WhenFull::Refuse,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            tracking: true,
            track_queued: false,
            prefetch: DEFAULT_PREFETCH,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Handlers running at once per worker process for this queue
    /// (overrides [`RuntimeBuilder::concurrency`](crate::RuntimeBuilder::concurrency)).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// The most tasks a worker pulls ahead of its free handler slots
    /// (default [`DEFAULT_PREFETCH`]), so that a handler that finishes
    /// starts the next task at once instead of after a round trip to the
    /// server, and the server answers fewer, larger pull requests: with one
    /// handler, short tasks run several times as fast (BENCHMARKS.md).
    /// A worker prefetches only while the queue's recent tasks ran shorter
    /// than 50 ms on it and none it runs has run 50 ms, and then only as
    /// many as its handlers finish in about 10 ms at the queue's average
    /// task time (a task pulled ahead waits about that long); it keeps the
    /// leases of prefetched tasks alive, so long tasks are never held back
    /// from another worker that is free; until its first 16 tasks have
    /// finished it prefetches nothing. `0` turns prefetching off.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// Tasks of this queue running at once across every worker process
    /// (JetStream's `max_ack_pending` on the queue's shared consumer).
    pub fn max_in_flight(mut self, n: i64) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Retries for tasks of this queue that do not set `retries` themselves
    /// (overrides [`RuntimeBuilder::default_retries`](crate::RuntimeBuilder::default_retries)).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// JetStream's lease on a delivered task of this queue (overrides
    /// [`RuntimeBuilder::ack_wait`](crate::RuntimeBuilder::ack_wait)).
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = Some(ack_wait);
        self
    }

    /// A task not started within `validity` of its enqueue time is marked
    /// expired and never runs.
    pub fn validity(mut self, validity: Duration) -> Self {
        self.validity = Some(validity);
        self
    }

    /// Where the stream keeps its tasks (default [`Storage::File`]).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Copies of the queue's stream in a JetStream cluster (1 to 5), for
    /// this queue only. Without it the queue follows the client: see
    /// [`Client::with_replicas`](crate::Client::with_replicas) and its
    /// cluster-aware default (3 on a cluster of 3 or more servers, else 1).
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = Some(replicas);
        self
    }

    /// At most this many queued tasks; see [`when_full`](Self::when_full).
    pub fn max_tasks(mut self, n: i64) -> Self {
        self.max_tasks = Some(n);
        self
    }

    /// At most this many bytes of queued tasks; see [`when_full`](Self::when_full).
    pub fn max_bytes(mut self, n: i64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// What a full queue does with one more task (default [`WhenFull::Refuse`]).
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// How long a task id is remembered to absorb a republished task
    /// (default [`DEFAULT_DEDUP_WINDOW`]).
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// Whether the state of every task is kept for
    /// [`Client::task_info`](crate::Client::task_info) (default on). Off
    /// saves two key-value writes per task on the fastest queues.
    pub fn tracking(mut self, on: bool) -> Self {
        self.tracking = on;
        self
    }

    /// Where a tracked task's `queued` state is kept (default: off, in the
    /// queue itself). Either way
    /// [`Client::task_info`](crate::Client::task_info) answers `queued` for
    /// a waiting task and [`Client::cancel`](crate::Client::cancel) removes
    /// it.
    ///
    /// Off, natask's producers publish each task on a subject of its own
    /// (`<prefix>.q.<queue>.<task>.<id>`) and write nothing else at
    /// enqueue; a waiting task is found there. On, tasks share their task's
    /// subject and `enqueue` writes the `queued` state to the task bucket:
    /// one more key-value write per task, so enqueueing costs about twice
    /// as much, but the stream holds one subject per task type, and the
    /// server finds a consumer's next task faster. On a 2-core machine
    /// (`BENCHMARKS.md`, scenario 9 and "What is left") processing ran
    /// about 1.2× as fast with it on, at one handler and at 256, while
    /// enqueue ran at 0.6–0.75 of it off: turn it on for queues whose
    /// processing matters more than their enqueue. No effect when
    /// [`tracking`](Self::tracking) is off.
    pub fn track_queued(mut self, on: bool) -> Self {
        self.track_queued = on;
        self
    }

    /// Checks every setting; the error names the queue and the field.
    /// Provisioning and [`RuntimeBuilder::build`](crate::RuntimeBuilder::build)
    /// call this, so an invalid policy never reaches the server.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        let invalid = |field, problem: String| {
            Err(InvalidPolicy {
                queue: self.name.clone(),
                field,
                problem,
            })
        };
        if self.concurrency == Some(0) {
            return invalid("concurrency", "must be at least 1, got 0".into());
        }
        if self.max_in_flight < 1 {
            return invalid(
                "max_in_flight",
                format!("must be at least 1, got {}", self.max_in_flight),
            );
        }
        if let Some(ack_wait) = self.ack_wait.filter(|w| *w < Duration::from_secs(1)) {
            return invalid("ack_wait", format!("must be at least 1s, got {ack_wait:?}"));
        }
        if let Some(n) = self.replicas.filter(|n| !REPLICAS.contains(n)) {
            return invalid("replicas", format!("must be between 1 and 5, got {n}"));
        }
        if let Some(n) = self.max_tasks.filter(|n| *n < 1) {
            return invalid("max_tasks", format!("must be at least 1, got {n}"));
        }
        if let Some(n) = self.max_bytes.filter(|n| *n < 1) {
            return invalid("max_bytes", format!("must be at least 1, got {n}"));
        }
        if self.dedup_window.is_zero() {
            return invalid("dedup_window", "must be longer than zero".into());
        }
        Ok(())
    }
}

/// The replica counts JetStream allows.
pub(crate) const REPLICAS: std::ops::RangeInclusive<usize> = 1..=5;

/// [`Client::with_replicas`](crate::Client::with_replicas) was given a count
/// JetStream does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replicas must be between 1 and 5 (JetStream's limit), got {0}")]
pub struct InvalidReplicas(pub usize);

/// A [`QueuePolicy`] setting is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy of queue `{queue}`: `{field}` {problem}")]
#[non_exhaustive]
pub struct InvalidPolicy {
    /// The queue.
    pub queue: String,
    /// The setting at fault, named as its [`QueuePolicy`] method.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Whether natask may create a queue's stream and consumer when they do not
/// exist. Set it with [`Client::with_provisioning`](crate::Client::with_provisioning).
///
/// Either way, an existing stream or consumer is attached to as it is, and
/// never rewritten: differences from the [`QueuePolicy`] are logged as
/// warnings, and [`Queue::update`](crate::Queue::update)
/// applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Provisioning {
    /// Create what is missing, from the queue's policy (the default).
    #[default]
    Create,
    /// Never create a stream, consumer or bucket: for accounts whose
    /// streams an operator manages. A missing one is an error
    /// ([`ProvisionError::Missing`](crate::ProvisionError::Missing)) that
    /// names it. A worker needs its queues' streams and consumers, the
    /// dead-letter stream and the hand-back and task-state buckets; running
    /// one worker with [`Create`](Self::Create) once creates them all.
    NoCreate,
}

/// One setting where a queue's live stream or consumer differs from its
/// [`QueuePolicy`]; see [`Queue::drift`](crate::Queue::drift)
/// and [`Queue::update`](crate::Queue::update).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drift {
    /// The setting, named as its [`QueuePolicy`] method (`max_in_flight`,
    /// `ack_wait`, `storage`, `replicas`, `max_tasks`, `max_bytes`,
    /// `when_full`, `dedup_window`), or `retention` for a stream that is
    /// not a work queue.
    pub field: &'static str,
    /// The value on the server.
    pub live: String,
    /// The value the policy asks for.
    pub wanted: String,
}

impl Drift {
    pub(crate) fn new(field: &'static str, live: impl ToString, wanted: impl ToString) -> Drift {
        Drift {
            field,
            live: live.to_string(),
            wanted: wanted.to_string(),
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: live {}, wanted {}",
            self.field, self.live, self.wanted
        )
    }
}
