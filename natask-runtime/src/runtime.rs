//! The worker side: collecting tasks, provisioning their queues and serving them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use natask_core::registry::{self, RegistryError};
use natask_core::{Backoff, StateMap, Task, TaskEntry};

use crate::client::Client;
use crate::handback::Handbacks;
use crate::http::Health;
use crate::middleware::{Middleware, Tracing};
use crate::provision::{self, ConsumerSettings, ProvisionError};
use crate::worker::{Config, QueueWorker, Shared};

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

/// How long a starting runtime waits to learn of earlier cancellations.
const CANCELLATIONS_CATCH_UP: Duration = Duration::from_secs(5);

/// The fix for an empty or incomplete registry, shared by two errors.
const LINK_HINT: &str = "if the tasks live in a library crate, add `use your_tasks_crate as _;` \
    to the worker's main.rs (a crate the binary never mentions is not linked, so its tasks are \
    missing), or register them explicitly with `.register::<YourTask>()`";

/// Configures a [`Runtime`]. Start with [`Runtime::builder`].
#[must_use = "call `.build().await` to get a runtime"]
pub struct RuntimeBuilder {
    client: Client,
    states: StateMap,
    queues: Option<Vec<String>>,
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
    /// A task needs shared state that was not registered.
    #[error("task `{task}` needs `State<{type_name}>`, but no value of that type was registered; add `.state(value)` with a `{type_name}` to the runtime builder")]
    MissingState {
        /// The task.
        task: &'static str,
        /// The missing type.
        type_name: &'static str,
    },
    /// A setting is out of range.
    #[error("invalid runtime setting: {0}")]
    Config(String),
    /// The schedule of a cron task could not be put in place (or a stale
    /// one removed).
    #[error(transparent)]
    Cron(#[from] crate::cron::CronError),
    /// A queue's stream or consumer could not be set up.
    #[error("could not provision queue `{queue}`")]
    Provision {
        /// The queue.
        queue: String,
        /// What went wrong.
        #[source]
        source: ProvisionError,
    },
}

/// The runtime stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A queue's worker loop panicked; this is a bug in natask.
    #[error("the worker of queue `{queue}` stopped unexpectedly; please report this")]
    WorkerStopped {
        /// The queue.
        queue: String,
    },
}

/// Serves every registered task: one worker loop per queue, each pulling from
/// the queue's shared durable consumer, so any number of processes share the
/// work.
///
/// ```no_run
/// use natask_runtime::{Client, Runtime};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("nats://127.0.0.1:4222").await?;
/// let runtime = Runtime::builder(client).concurrency(8).build().await?;
/// runtime.run().await?; // until ctrl-c or SIGTERM
/// # Ok(()) }
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    workers: Vec<Arc<QueueWorker>>,
    http: Option<tokio::net::TcpListener>,
}

impl Runtime {
    /// Starts configuring a runtime on `client`.
    pub fn builder(client: Client) -> RuntimeBuilder {
        RuntimeBuilder {
            client,
            states: StateMap::new(),
            queues: None,
            explicit: Vec::new(),
            use_linked: true,
            concurrency: DEFAULT_CONCURRENCY,
            config: Config::default(),
            middleware: Vec::new(),
            http: None,
        }
    }

    /// The queues this runtime serves, with their task names.
    pub fn queues(&self) -> BTreeMap<&'static str, Vec<&'static str>> {
        self.workers
            .iter()
            .map(|w| {
                let mut tasks: Vec<_> = w.handlers.keys().copied().collect();
                tasks.sort_unstable();
                (w.queue, tasks)
            })
            .collect()
    }

    /// A readiness handle, usable from another task while the runtime runs.
    pub fn health(&self) -> Health {
        Health {
            client: self.shared.client.clone(),
            queues: self
                .workers
                .iter()
                .map(|w| (w.queue, w.consumer.clone()))
                .collect(),
        }
    }

    /// Whether NATS is connected and every served queue's stream and
    /// consumer exist.
    pub async fn is_ready(&self) -> bool {
        self.health().is_ready().await
    }

    /// The address of the HTTP endpoint, if [`RuntimeBuilder::http`] was set.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until ctrl-c (SIGINT) or SIGTERM, then shuts down gracefully.
    pub async fn run(self) -> Result<(), RunError> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes. Then stops fetching, lets in-flight
    /// handlers finish within the shutdown grace, hands the rest back to the
    /// queue so another worker takes them at once, and returns.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RunError> {
        let stop = CancellationToken::new();
        let hand_back = CancellationToken::new();
        let mut loops = JoinSet::new();
        let mut names = HashMap::new();
        // Tasks cancelled before this runtime started must not start here.
        let (caught_up, known) = tokio::sync::oneshot::channel();
        tokio::spawn(Arc::clone(&self.shared.cancellations).follow(
            self.shared.client.clone(),
            stop.clone(),
            caught_up,
        ));
        if tokio::time::timeout(CANCELLATIONS_CATCH_UP, known)
            .await
            .is_err()
        {
            tracing::warn!(
                "earlier task cancellations were not read within {CANCELLATIONS_CATCH_UP:?}; serving anyway"
            );
        }
        for worker in &self.workers {
            let handle = loops.spawn(Arc::clone(worker).run(
                Arc::clone(&self.shared),
                stop.clone(),
                hand_back.clone(),
            ));
            names.insert(handle.id(), worker.queue);
        }
        if let Some(listener) = self.http.take() {
            tokio::spawn(crate::http::serve(listener, self.health(), stop.clone()));
        }
        #[cfg(feature = "metrics")]
        {
            let health = self.health();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(10));
                while tokio::select! { _ = every.tick() => true, () = stop.cancelled() => false } {
                    let _ = health.check().await;
                }
            });
        }
        let mut failed = None;
        tokio::select! {
            () = shutdown => {}
            Some(ended) = loops.join_next_with_id() => {
                let id = match ended { Ok((id, ())) => id, Err(e) => e.id() };
                failed = names.get(&id).copied();
            }
        }
        tracing::info!(grace = ?self.shared.config.shutdown_grace, "shutting down: no new tasks are taken");
        stop.cancel();
        let drained = tokio::time::timeout(self.shared.config.shutdown_grace, async {
            while loops.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown grace elapsed; handing unfinished tasks back to their queues");
            hand_back.cancel();
            while loops.join_next().await.is_some() {}
        }
        tracing::info!("shut down");
        match failed {
            Some(queue) => Err(RunError::WorkerStopped {
                queue: queue.to_owned(),
            }),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("queues", &self.queues())
            .finish()
    }
}

impl RuntimeBuilder {
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

    /// Serves only these queues (default: every queue a registered task uses).
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
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

    /// JetStream's lease on a delivered task (default [`DEFAULT_ACK_WAIT`]);
    /// the runtime renews it while a handler runs. Applies when the queue's
    /// consumer is created; a queue's
    /// [`QueuePolicy::ack_wait`](crate::QueuePolicy::ack_wait) overrides it.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.config.ack_wait = ack_wait;
        self
    }

    /// Collects the tasks, checks them, and creates (or finds) every
    /// queue's stream and consumer.
    pub async fn build(self) -> Result<Runtime, BuildError> {
        if self.concurrency == 0 {
            return Err(BuildError::Config("concurrency must be at least 1".into()));
        }
        if self.config.ack_wait < Duration::from_secs(1) {
            return Err(BuildError::Config("ack_wait must be at least 1s".into()));
        }
        let linked = if self.use_linked {
            registry::tasks()
        } else {
            &[]
        };
        let entries = registry::dedup(linked.iter().copied().chain(self.explicit))?;
        if entries.is_empty() {
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
        if let Some(wanted) = &self.queues {
            for queue in wanted {
                if !by_queue.contains_key(queue.as_str()) {
                    return Err(BuildError::UnknownQueue {
                        queue: queue.clone(),
                        known: by_queue
                            .keys()
                            .map(|q| format!("`{q}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
            by_queue.retain(|q, _| wanted.iter().any(|w| w == q));
        }
        for tasks in by_queue.values() {
            let mut sorted: Vec<_> = tasks.values().collect();
            sorted.sort_by_key(|e| e.name);
            for entry in sorted {
                if let Some(missing) = entry.states.iter().find(|k| !self.states.contains(k)) {
                    return Err(BuildError::MissingState {
                        task: entry.name,
                        type_name: missing.type_name(),
                    });
                }
            }
        }

        let mut workers = Vec::new();
        for (queue, handlers) in by_queue {
            let policy = self.client.queue_policy(queue);
            policy
                .validate()
                .map_err(|e| BuildError::Config(e.to_string()))?;
            let mut settings = ConsumerSettings::of(&policy, self.config.ack_wait);
            let consumer = provision::queue_consumer(&self.client, queue, &settings)
                .await
                .map_err(|source| BuildError::Provision {
                    queue: queue.to_owned(),
                    source,
                })?;
            // An attached consumer keeps its own lease; renew within the
            // shorter of the two so a task is never lost to a short lease.
            settings.ack_wait = settings
                .ack_wait
                .min(consumer.cached_info().config.ack_wait);
            self.client
                .mark_ensured(self.client.names().queue_stream(queue));
            crate::cron::sync(&self.client, queue, &handlers).await?;
            let mut tasks: Vec<_> = handlers.keys().copied().collect();
            tasks.sort_unstable();
            let concurrency = policy.concurrency.unwrap_or(self.concurrency);
            tracing::info!(queue, tasks = ?tasks, concurrency, max_in_flight = policy.max_in_flight, "serving queue");
            workers.push(Arc::new(QueueWorker {
                queue,
                consumer,
                handlers,
                concurrency,
                settings,
                default_retries: policy.retries.unwrap_or(self.config.default_retries),
                tracking: self.client.tracks(queue),
                validity: policy.validity,
            }));
        }
        let shared_provision = |source| BuildError::Provision {
            queue: "(all)".to_owned(),
            source,
        };
        let handbacks = Handbacks::provision(
            self.client.jetstream(),
            self.client.names(),
            self.client.provisioning(),
        )
        .await
        .map_err(shared_provision)?;
        // Up front, so that one worker run creates everything a locked-down
        // (Provisioning::NoCreate) worker needs, and such a worker fails
        // here rather than circling failed tasks it cannot dead-letter.
        let dlq = self.client.names().dead_letter_stream();
        provision::dead_letter_stream(
            self.client.jetstream(),
            self.client.names(),
            self.client.provisioning(),
        )
        .await
        .map_err(shared_provision)?;
        self.client.mark_ensured(dlq);
        // Cancellations are followed whether or not tasks are tracked.
        self.client.task_store().await.map_err(|e| {
            shared_provision(ProvisionError::Stream {
                stream: format!("KV_{}", self.client.names().task_bucket()),
                source: e.into(),
            })
        })?;
        let http = match self.http {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                BuildError::Config(format!("cannot listen for HTTP on {addr}: {e}"))
            })?),
            None => None,
        };
        #[cfg(feature = "metrics")]
        if http.is_some() {
            let _ = crate::metrics::prometheus();
        }
        Ok(Runtime {
            http,
            shared: Arc::new(Shared {
                client: self.client,
                states: self.states,
                config: self.config,
                handbacks,
                cancellations: Arc::default(),
                middleware: builtin_middleware()
                    .into_iter()
                    .chain(self.middleware)
                    .collect(),
            }),
            workers,
        })
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// natask's own middleware, always outermost.
pub(crate) fn builtin_middleware() -> Vec<Arc<dyn Middleware>> {
    #[allow(unused_mut)] // pushed to only with the `metrics` feature
    let mut chain: Vec<Arc<dyn Middleware>> = vec![Arc::new(Tracing)];
    #[cfg(feature = "metrics")]
    chain.push(Arc::new(crate::metrics::Metrics::default()));
    chain
}
