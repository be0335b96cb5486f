//! The natask side of each measurement, next to `raw`'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use natask_runtime::{Client, QueuePolicy, Runtime};
use tokio::sync::oneshot;

use crate::probe::Probe;
use crate::tasks::{BenchJob, QUEUE};

/// A client of the server at `url` with natask's default settings, as a
/// new user gets it (task tracking on): the natask of scenarios 1–4 and 10.
pub(crate) async fn connect(url: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(url).await?)
}

/// A client whose bench queue has task tracking off: the second natask row
/// of scenarios 1–4, and the natask of scenarios 5–8, which measure the
/// queue itself and stay comparable with earlier runs.
pub(crate) async fn connect_untracked(url: &str) -> anyhow::Result<Client> {
    Ok(connect(url)
        .await?
        .with_queue(QueuePolicy::new(QUEUE).tracking(false))?)
}

/// natask with task tracking on and the `queued` state written at enqueue
/// too (`QueuePolicy::track_queued(true)`, the default before issue 15).
pub(crate) async fn connect_queued(url: &str) -> anyhow::Result<Client> {
    Ok(connect(url)
        .await?
        .with_queue(QueuePolicy::new(QUEUE).track_queued(true))?)
}

/// Enqueues each task and awaits it before the next; returns how many.
pub(crate) async fn enqueue_each(
    client: &Client,
    jobs: impl Iterator<Item = BenchJob>,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    for job in jobs {
        if Instant::now() > deadline {
            break;
        }
        // What the generated `job.enqueue(client)` calls.
        client.enqueue(&job).await?;
        sent += 1;
    }
    Ok(sent)
}

/// `Client::enqueue_many`, failing on the first failed task.
pub(crate) async fn enqueue_many(
    client: &Client,
    jobs: impl Iterator<Item = BenchJob>,
) -> anyhow::Result<u64> {
    let results = client.enqueue_many(jobs).await;
    let n = results.len() as u64;
    for r in results {
        r.context("enqueue_many")?;
    }
    Ok(n)
}

/// A natask worker serving the bench queue until stopped.
pub(crate) struct Worker {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), natask_runtime::RunError>>,
}

impl Worker {
    pub(crate) async fn start(
        client: &Client,
        probe: Arc<Probe>,
        concurrency: usize,
    ) -> anyhow::Result<Worker> {
        Self::start_with(client, probe, concurrency, false).await
    }

    /// `observed`: also serve `/metrics` (which installs the Prometheus
    /// recorder), as an operator would; the caller installs a tracing
    /// subscriber.
    pub(crate) async fn start_with(
        client: &Client,
        probe: Arc<Probe>,
        concurrency: usize,
        observed: bool,
    ) -> anyhow::Result<Worker> {
        let mut builder = Runtime::builder(client.clone())
            .queues([QUEUE])
            .state_arc(probe)
            .concurrency(concurrency)
            .shutdown_grace(Duration::from_secs(5));
        if observed {
            builder = builder.http("127.0.0.1:0".parse()?);
        }
        let runtime = builder.build().await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(runtime.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Worker { stop, done })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.done)
            .await
            .context("the worker did not stop within 30 s")???;
        Ok(())
    }
}
