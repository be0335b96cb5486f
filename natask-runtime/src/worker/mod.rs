//! The worker side: a [`Runtime`] serves every registered task. Its
//! builder collects and checks the tasks and provisions their queues
//! (`builder`); one loop per queue fetches tasks (`fetch`); each delivery
//! is one attempt, classified, run and settled (`attempt`), parked in the
//! dead letters when it cannot succeed (`dead_letter`). Cron schedules
//! (`cron`), pause logging (`pauses`) and the HTTP endpoint (`http`) sit
//! beside them. The worker side uses the producer side's [`Client`], never
//! the other way round.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use natask_core::StateMap;

use crate::client::Client;
use crate::jetstream::confirm;
use crate::middleware::Middleware;
use crate::store::cancellations::Cancellations;
use crate::store::handbacks::Handbacks;

pub(crate) mod attempt;
pub(crate) mod builder;
pub(crate) mod cron;
pub(crate) mod dead_letter;
mod fetch;
mod heartbeat;
pub(crate) mod http;
mod message;
mod pauses;

use builder::{Config, RuntimeBuilder};
use fetch::QueueWorker;
use http::Health;

/// How long a starting runtime waits to learn of earlier cancellations.
const CANCELLATIONS_CATCH_UP: Duration = Duration::from_secs(5);

/// What every queue's worker loop of one runtime shares.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) states: StateMap,
    pub(crate) config: Config,
    pub(crate) handbacks: Handbacks,
    /// Built-in middleware first, then the user's, outermost first.
    pub(crate) middleware: Vec<Arc<dyn Middleware>>,
    /// Cancellation requests seen, and the tasks running here.
    pub(crate) cancellations: Arc<Cancellations>,
    /// Acks being confirmed beside the handler slots (`attempt::settle`);
    /// a stopping runtime waits for them within its grace.
    pub(crate) confirming: TaskTracker,
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
    pub(crate) shared: Arc<Shared>,
    pub(crate) workers: Vec<Arc<QueueWorker>>,
    pub(crate) http: Option<tokio::net::TcpListener>,
    /// The registry heartbeat of the current run, once started.
    pub(crate) heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Runtime {
    /// Starts configuring a runtime on `client`.
    pub fn builder(client: Client) -> RuntimeBuilder {
        RuntimeBuilder::new(client)
    }

    /// The queues this runtime serves, with their task names; a
    /// subscription (`<service>__<handler>`) is listed with its event.
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
    /// queue so another worker takes them at once, and returns once the
    /// server confirmed the acks sent (waiting for them, too, at most what
    /// is left of the grace).
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RunError> {
        let stop = CancellationToken::new();
        let hand_back = CancellationToken::new();
        self.follow_cancellations(&stop).await;
        let (mut loops, names) = self.start(&stop, &hand_back);
        let mut failed = None;
        tokio::select! {
            () = shutdown => {}
            Some(ended) = loops.join_next_with_id() => {
                let id = match ended { Ok((id, ())) => id, Err(e) => e.id() };
                failed = names.get(&id).copied();
            }
        }
        self.shut_down(loops, &stop, &hand_back).await;
        match failed {
            Some(queue) => Err(RunError::WorkerStopped {
                queue: queue.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Follows cancellation requests until `stop`, once those made before
    /// are known (or after a while): tasks cancelled before this runtime
    /// started must not start here.
    async fn follow_cancellations(&self, stop: &CancellationToken) {
        let (caught_up, known) = tokio::sync::oneshot::channel();
        tokio::spawn(Arc::clone(&self.shared.cancellations).follow(
            self.shared.client.tasks().clone(),
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
    }

    /// Starts every queue's loop, the HTTP endpoint, the registry heartbeat
    /// and the queue gauges;
    /// the loops, and the queue each serves.
    fn start(
        &mut self,
        stop: &CancellationToken,
        hand_back: &CancellationToken,
    ) -> (JoinSet<()>, HashMap<tokio::task::Id, &'static str>) {
        let mut loops = JoinSet::new();
        let mut names = HashMap::new();
        for worker in &self.workers {
            let handle = loops.spawn(Arc::clone(worker).run(
                Arc::clone(&self.shared),
                stop.clone(),
                hand_back.clone(),
            ));
            names.insert(handle.id(), worker.queue);
        }
        if let Some(listener) = self.http.take() {
            tokio::spawn(http::serve(listener, self.health(), stop.clone()));
        }
        let heartbeat = heartbeat::Heartbeat::new(Arc::clone(&self.shared), self.workers.clone());
        self.heartbeat = Some(tokio::spawn(heartbeat.run(stop.clone())));
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
        (loops, names)
    }

    /// Stops fetching, waits for the handlers within the grace, then hands
    /// the unfinished back.
    async fn shut_down(
        &mut self,
        mut loops: JoinSet<()>,
        stop: &CancellationToken,
        hand_back: &CancellationToken,
    ) {
        let grace = self.shared.config.shutdown_grace;
        tracing::info!(?grace, "shutting down: no new tasks are taken");
        let until = tokio::time::Instant::now() + grace;
        stop.cancel();
        let drained =
            tokio::time::timeout(grace, async { while loops.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("shutdown grace elapsed; handing unfinished tasks back to their queues");
            hand_back.cancel();
            while loops.join_next().await.is_some() {}
        }
        // An ack not yet sent when the process exits would run its task
        // again; one the server does not confirm (a consumer electing a
        // leader) gets what is left of the grace, and at least one try.
        let confirming = &self.shared.confirming;
        confirming.close();
        let until = until.max(tokio::time::Instant::now() + confirm::TRY);
        if tokio::time::timeout_at(until, confirming.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                unconfirmed = confirming.len(),
                "shutdown grace elapsed; some acks were not confirmed and their tasks may run again"
            );
        }
        // Out of the worker registry last: it served until now.
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.await;
        }
        tracing::info!("shut down");
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("queues", &self.queues())
            .finish()
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
