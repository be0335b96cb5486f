//! Building a [`Runtime`]: collecting the tasks, checking them, and
//! provisioning what serving them needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use natask_core::registry::{self, RegistryError};
use natask_core::{event, Backoff, StateMap, Task, TaskEntry};

use super::fetch::{QueueWorker, Source};
use super::{Runtime, Shared};
use crate::client::Client;
use crate::jetstream::assets::{Bucket, ConsumerSettings};
use crate::jetstream::provision::ProvisionError;
use crate::middleware::{self, Middleware};
use crate::policy::{InvalidPolicy, QueuePolicy};
use crate::signing::PublicKey;
use crate::store::fleet::DEFAULT_HEARTBEAT;
use crate::store::handbacks::Handbacks;

/// Handlers per queue and process when [`RuntimeBuilder::concurrency`] is not called.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Retries after the first attempt for tasks that do not say `retries = N`.
pub const DEFAULT_RETRIES: u32 = 3;
/// Per-attempt timeout for tasks that do not say `timeout = "..."`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long in-flight handlers may finish after the shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// JetStream's lease on a delivered task; renewed while the handler runs.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// The fix for an empty or incomplete registry, shared by two errors.
const LINK_HINT: &str = "if the tasks live in a library crate, add `use your_tasks_crate as _;` \
    to the worker's main.rs (a crate the binary never mentions is not linked, so its tasks are \
    missing), or register them explicitly with `.register::<YourTask>()`";

mod subscriptions;

/// The runtime's settings that apply to every queue.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) default_retries: u32,
    pub(crate) default_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) ack_wait: Duration,
    pub(crate) default_backoff: Backoff,
    /// Deliveries of a task no handler here knows before it is
    /// dead-lettered; the delay between them gives a worker that knows it
    /// (during a rolling deploy) the chance to take it.
    pub(crate) unknown_task_deliveries: u32,
    pub(crate) unknown_task_delay: Duration,
    /// Set with `require_signatures`: only tasks signed by one of these
    /// keys run. Empty: signatures are not checked.
    pub(crate) signers: Arc<[PublicKey]>,
    /// How often the runtime's registry entry is written.
    pub(crate) heartbeat: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_retries: DEFAULT_RETRIES,
            default_timeout: DEFAULT_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            ack_wait: DEFAULT_ACK_WAIT,
            default_backoff: Backoff::DEFAULT,
            unknown_task_deliveries: 5,
            unknown_task_delay: Duration::from_secs(5),
            signers: Arc::new([]),
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }
}

/// Configures a [`Runtime`]. Start with [`Runtime::builder`].
#[must_use = "call `.build().await` to get a runtime"]
pub struct RuntimeBuilder {
    client: Client,
    states: StateMap,
    queues: Option<Vec<String>>,
    services: Option<Vec<String>>,
    explicit: Vec<TaskEntry>,
    use_linked: bool,
    concurrency: usize,
    config: Config,
    middleware: Vec<Arc<dyn Middleware>>,
    http: Option<std::net::SocketAddr>,
}

/// The runtime could not be built. Nothing is served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two functions claim one task name.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// No task is registered at all.
    #[error("no tasks are registered, so there is nothing to serve; {LINK_HINT}")]
    NoTasks,
    /// A queue passed to [`RuntimeBuilder::queues`] has no registered task.
    #[error("queue `{queue}` was asked for, but no registered task uses it (registered queues: {known}); {LINK_HINT}")]
    UnknownQueue {
        /// The queue asked for.
        queue: String,
        /// The queues that do have tasks.
        known: String,
    },
    /// A service passed to [`RuntimeBuilder::services`] has no `#[subscribe]`
    /// handler in this binary.
    #[error("service `{service}` was asked for, but no linked `#[subscribe]` handler belongs to it (linked services: {known}); {LINK_HINT}")]
    UnknownService {
        /// The service asked for.
        service: String,
        /// The services that do have handlers.
        known: String,
    },
    /// Two `#[subscribe]` handlers of one service share a handler name for
    /// one event, and so would share one consumer.
    #[error("subscription `{subscription}` to event `{event}` is defined twice: by {first} and by {second}; give one of them another name with `#[subscribe(name = \"...\")]`")]
    DuplicateSubscription {
        /// The subscription (its consumer's name).
        subscription: &'static str,
        /// The event.
        event: &'static str,
        /// Where the first is defined.
        first: String,
        /// Where the second is defined.
        second: String,
    },
    /// A task needs shared state that was not registered.
    #[error("task `{task}` needs `State<{type_name}>`, but no value of that type was registered; add `.state(value)` with a `{type_name}` to the runtime builder")]
    MissingState {
        /// The task.
        task: &'static str,
        /// The missing type.
        type_name: &'static str,
    },
    /// A setting of the builder is out of range.
    #[error("invalid runtime setting: {setting} {problem}")]
    InvalidSetting {
        /// The setting, named as its [`RuntimeBuilder`] method.
        setting: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A served queue's [`QueuePolicy`](crate::QueuePolicy) is invalid.
    #[error(transparent)]
    InvalidPolicy(#[from] InvalidPolicy),
    /// The HTTP endpoint ([`RuntimeBuilder::http`]) cannot listen.
    #[error("cannot listen for HTTP on {addr}")]
    Http {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The schedule of a cron task could not be put in place (or a stale
    /// one removed).
    #[error(transparent)]
    Cron(#[from] super::cron::CronError),
    /// A stream, consumer or bucket the runtime needs could not be found or
    /// created; the error names it.
    #[error("could not provision what the runtime serves")]
    Provision {
        /// What went wrong.
        #[source]
        source: ProvisionError,
    },
}

impl From<ProvisionError> for BuildError {
    fn from(source: ProvisionError) -> Self {
        BuildError::Provision { source }
    }
}

impl RuntimeBuilder {
    pub(crate) fn new(client: Client) -> RuntimeBuilder {
        RuntimeBuilder {
            client,
            states: StateMap::new(),
            queues: None,
            services: None,
            explicit: Vec::new(),
            use_linked: true,
            concurrency: DEFAULT_CONCURRENCY,
            config: Config::default(),
            middleware: Vec::new(),
            http: None,
        }
    }

    /// Registers shared state, injected into every handler parameter of
    /// type `State<T>`. One value per type; a second call replaces the first.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Registers shared state the caller keeps a handle to; handlers see it
    /// as `State<T>`.
    pub fn state_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.states.insert_arc(value);
        self
    }

    /// Adds middleware around every handler call (see [`middleware`](crate::middleware)).
    /// The first added runs outermost, after natask's built-in tracing.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Serves `/healthz`, `/readyz` and (with the `metrics` feature)
    /// `/metrics` over HTTP on `addr` while the runtime runs; off by default.
    /// Port 0 picks a free port, see [`Runtime::http_addr`].
    pub fn http(mut self, addr: std::net::SocketAddr) -> Self {
        self.http = Some(addr);
        self
    }

    /// Serves only these queues (default: every queue a registered task
    /// uses). Picking queues and no [`services`](Self::services) serves no
    /// `#[subscribe]` handler: a runtime serves what was picked.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Serves only the `#[subscribe]` handlers of these services (default:
    /// every service linked into the binary). Picking services and no
    /// [`queues`](Self::queues) serves no task: a runtime serves what was
    /// picked, so `.services(["billing"])` is a billing instance only.
    pub fn services<I, S>(mut self, services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.services = Some(services.into_iter().map(Into::into).collect());
        self
    }

    /// Handlers running at once per queue in this process
    /// (default [`DEFAULT_CONCURRENCY`]); a queue's
    /// [`QueuePolicy::concurrency`](crate::QueuePolicy::concurrency) overrides it.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Registers `T` explicitly, for targets where link-time collection does
    /// not work (Miri, some wasm targets, unusual linkers). Registering a
    /// task that is also linked is harmless.
    pub fn register<T: Task>(mut self) -> Self {
        self.explicit.push(T::ENTRY);
        self
    }

    /// Serves only tasks given to [`register`](Self::register), ignoring the
    /// link-time registry.
    pub fn only_registered(mut self) -> Self {
        self.use_linked = false;
        self
    }

    /// How long in-flight handlers may finish after the shutdown signal
    /// (default [`DEFAULT_SHUTDOWN_GRACE`]).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Retries for tasks that do not set `retries` (default [`DEFAULT_RETRIES`]);
    /// a queue's [`QueuePolicy::retries`](crate::QueuePolicy::retries) overrides it.
    pub fn default_retries(mut self, retries: u32) -> Self {
        self.config.default_retries = retries;
        self
    }

    /// Timeout for tasks that do not set `timeout` (default [`DEFAULT_TIMEOUT`]).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = timeout;
        self
    }

    /// Retry delays for tasks that do not set `backoff` (default
    /// [`Backoff::DEFAULT`]: 1 s, doubling, at most 5 min, ±20 % jitter).
    pub fn default_backoff(mut self, backoff: Backoff) -> Self {
        self.config.default_backoff = backoff;
        self
    }

    /// How a task whose name no handler of this worker knows is treated:
    /// handed back `deliveries - 1` times, `delay` apart, so a worker that
    /// knows it can take it (during a rolling deploy), then dead-lettered
    /// (defaults: 5 deliveries, 5 s).
    pub fn unknown_task_grace(mut self, deliveries: u32, delay: Duration) -> Self {
        self.config.unknown_task_deliveries = deliveries.max(1);
        self.config.unknown_task_delay = delay;
        self
    }

    /// Runs only tasks signed by one of `keys` (see
    /// [`Client::with_signing_key`](crate::Client::with_signing_key)); a
    /// task that is unsigned, signed by another key, or changed after it
    /// was signed is dead-lettered without running, with reason
    /// `signature` and a message saying which. Its task state is left
    /// alone: an unverified message is not trusted to name a task. Give
    /// several keys to rotate them. See `docs/security.md`.
    ///
    /// ```no_run
    /// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use natask_runtime::{PublicKey, Runtime};
    /// let producers = PublicKey::from_file("/etc/natask/producers.pub")?;
    /// let runtime = Runtime::builder(client).require_signatures([producers]).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn require_signatures(mut self, keys: impl IntoIterator<Item = PublicKey>) -> Self {
        self.config.signers = keys.into_iter().collect();
        self
    }

    /// How often the runtime writes its entry in the worker registry
    /// (default [`DEFAULT_HEARTBEAT`]; at least 1 s). The entry lives three
    /// heartbeats, so a runtime that dies drops out of
    /// [`Client::workers`](crate::Client::workers) that long after its last.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.config.heartbeat = interval.max(Duration::from_secs(1));
        self
    }

    /// JetStream's lease on a delivered task (default [`DEFAULT_ACK_WAIT`]);
    /// the runtime renews it while a handler runs. Applies when the queue's
    /// consumer is created; a queue's
    /// [`QueuePolicy::ack_wait`](crate::QueuePolicy::ack_wait) overrides it.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.config.ack_wait = ack_wait;
        self
    }

    /// Collects the tasks, checks them, and creates (or finds) every
    /// queue's stream and consumer, the dead-letter stream and the buckets
    /// a worker writes, so that one run creates everything a locked-down
    /// ([`Provisioning::NoCreate`](crate::Provisioning::NoCreate)) worker
    /// needs, and such a worker fails here rather than circling failed
    /// tasks it cannot dead-letter.
    pub async fn build(self) -> Result<Runtime, BuildError> {
        self.check_settings()?;
        let by_queue = self.collect()?;
        let subscriptions = self.subscriptions()?;
        let mut workers = Vec::new();
        for (queue, handlers) in by_queue {
            workers.push(Arc::new(self.serve(queue, handlers).await?));
        }
        for sub in subscriptions {
            workers.push(Arc::new(self.subscribe(sub).await?));
        }
        let provisioner = self.client.provisioner();
        let handbacks = Handbacks::open(Arc::clone(provisioner)).await?;
        provisioner.dead_letters().await?;
        // Cancellations are followed whether or not tasks are tracked.
        provisioner.bucket(Bucket::Tasks).await?;
        // The catalog and the registry serve operators, not tasks: without
        // them the runtime serves all the same (and says so).
        for bucket in [Bucket::Catalog, Bucket::Workers] {
            if let Err(error) = provisioner.bucket(bucket).await {
                tracing::warn!(%error, "the live catalog or the worker registry is not available; tasks are served all the same");
            }
        }
        let http = match self.http {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| BuildError::Http { addr, source })?,
            ),
            None => None,
        };
        #[cfg(feature = "metrics")]
        if http.is_some() {
            let _ = crate::metrics::prometheus();
        }
        let middleware = middleware::builtin()
            .into_iter()
            .chain(self.middleware)
            .collect();
        Ok(Runtime {
            http,
            shared: Arc::new(Shared {
                client: self.client,
                states: self.states,
                config: self.config,
                handbacks,
                cancellations: Arc::default(),
                middleware,
                confirming: TaskTracker::new(),
            }),
            workers,
            heartbeat: None,
        })
    }

    fn check_settings(&self) -> Result<(), BuildError> {
        if self.concurrency == 0 {
            return Err(BuildError::InvalidSetting {
                setting: "concurrency",
                problem: "must be at least 1",
            });
        }
        if self.config.ack_wait < Duration::from_secs(1) {
            return Err(BuildError::InvalidSetting {
                setting: "ack_wait",
                problem: "must be at least 1s",
            });
        }
        Ok(())
    }

    /// The tasks to serve, by queue: linked and registered, without
    /// duplicates, only the queues asked for, each with its state.
    fn collect(
        &self,
    ) -> Result<BTreeMap<&'static str, HashMap<&'static str, TaskEntry>>, BuildError> {
        let linked = if self.use_linked {
            registry::tasks()
        } else {
            &[]
        };
        let entries = registry::dedup(linked.iter().copied().chain(self.explicit.iter().copied()))?;
        let subscribes = self.use_linked && !event::subscribers().is_empty();
        if entries.is_empty() && !subscribes {
            return Err(BuildError::NoTasks);
        }
        let mut by_queue: BTreeMap<&'static str, HashMap<&'static str, TaskEntry>> =
            BTreeMap::new();
        for entry in &entries {
            by_queue
                .entry(entry.queue)
                .or_default()
                .insert(entry.name, *entry);
        }
        // Services picked and no queues: the selection has no queues.
        let none_picked = Vec::new();
        let wanted = match (&self.queues, &self.services) {
            (Some(queues), _) => Some(queues),
            (None, Some(_)) => Some(&none_picked),
            (None, None) => None,
        };
        if let Some(wanted) = wanted {
            if let Some(queue) = wanted.iter().find(|q| !by_queue.contains_key(q.as_str())) {
                return Err(BuildError::UnknownQueue {
                    queue: queue.clone(),
                    known: by_queue
                        .keys()
                        .map(|q| format!("`{q}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            by_queue.retain(|q, _| wanted.iter().any(|w| w == q));
        }
        let mut served: Vec<&TaskEntry> = by_queue.values().flat_map(HashMap::values).collect();
        served.sort_by_key(|e| (e.queue, e.name));
        self.check_states(served)?;
        Ok(by_queue)
    }

    /// Provisions `queue` from its policy and puts its cron schedules in
    /// place; the worker loop that will serve it.
    async fn serve(
        &self,
        queue: &'static str,
        handlers: HashMap<&'static str, TaskEntry>,
    ) -> Result<QueueWorker, BuildError> {
        let client = &self.client;
        let policy = client.provisioner().policy(queue);
        policy.validate()?;
        let settings = ConsumerSettings::of(&policy, self.config.ack_wait);
        let consumer = client
            .provisioner()
            .queue_consumer(queue, &settings)
            .await?;
        super::cron::sync(client, queue, &handlers).await?;
        let mut tasks: Vec<_> = handlers.keys().copied().collect();
        tasks.sort_unstable();
        let tracking = client.tracks(queue);
        let worker = self.worker(queue, Source::Queue, consumer, handlers, &policy, settings);
        tracing::info!(queue, tasks = ?tasks, concurrency = worker.concurrency, max_in_flight = policy.max_in_flight, "serving queue");
        Ok(QueueWorker { tracking, ..worker })
    }

    /// The worker loop of `queue` (a queue or a subscription), reading
    /// `consumer` as `policy` says; it tracks no task states.
    fn worker(
        &self,
        queue: &'static str,
        source: Source,
        consumer: async_nats::jetstream::consumer::PullConsumer,
        handlers: HashMap<&'static str, TaskEntry>,
        policy: &QueuePolicy,
        mut settings: ConsumerSettings,
    ) -> QueueWorker {
        // An attached consumer keeps its own lease; renew within the
        // shorter of the two so a task is never lost to a short lease.
        settings.ack_wait = settings
            .ack_wait
            .min(consumer.cached_info().config.ack_wait);
        let replicated = consumer
            .cached_info()
            .cluster
            .as_ref()
            .is_some_and(|cluster| !cluster.replicas.is_empty());
        QueueWorker {
            queue,
            source,
            consumer,
            handlers,
            concurrency: policy.concurrency.unwrap_or(self.concurrency),
            settings,
            default_retries: policy.retries.unwrap_or(self.config.default_retries),
            tracking: false,
            validity: policy.validity,
            replicated,
            prefetch: policy.prefetch,
            running: Arc::default(),
            finished: Arc::default(),
        }
    }

    /// Fails if one of `entries` needs a state that was not registered.
    fn check_states<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a TaskEntry>,
    ) -> Result<(), BuildError> {
        for entry in entries {
            if let Some(missing) = entry.states.iter().find(|k| !self.states.contains(k)) {
                return Err(BuildError::MissingState {
                    task: entry.name,
                    type_name: missing.type_name(),
                });
            }
        }
        Ok(())
    }
}
