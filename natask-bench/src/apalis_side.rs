//! The apalis-nats side of scenario 10: the Rust framework on JetStream, as
//! its README and examples set it up (a durable pull consumer, otherwise its
//! defaults), with the same body as the raw baseline.
//!
//! What apalis-nats 0.1 does differently, and the table says: its stream is
//! a limits stream (tasks stay stored after their ack), and `push` returns
//! once the message is written to the connection: it drops JetStream's
//! publish ack unread. So an enqueue here is timed until the stream holds
//! every task, read from the stream's state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apalis::prelude::{BoxDynError, Data, TaskSink, WorkerBuilder, WorkerBuilderExt, WorkerError};
use apalis_nats::{Config, NatsJetStream};
use async_nats::jetstream;
use async_nats_apalis::jetstream::consumer::pull;

use crate::probe::Probe;
use crate::raw::RawJob;

/// apalis-nats' stream, which is also its subject.
pub(crate) const STREAM: &str = "APALIS_bench";

/// The tasks `push_bulk` gets at a time: the 256 in flight of the other sides.
const BULK: usize = 256;

/// apalis-nats' backend for the bench job, with a pull consumer.
pub(crate) type Backend = NatsJetStream<RawJob, pull::Config>;

/// A backend on the server at `url`, on a connection of its own (async-nats
/// 0.50, the version apalis-nats is built on).
pub(crate) async fn backend(url: &str) -> anyhow::Result<Backend> {
    let client = async_nats_apalis::connect(url).await?;
    let config = Config::new(STREAM).with_pull_consumer().durable();
    Ok(NatsJetStream::new(client).with_config(config))
}

/// Pushes each job and awaits `push` before the next; returns how many.
pub(crate) async fn push_each(
    backend: &mut Backend,
    jobs: impl Iterator<Item = RawJob>,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    for job in jobs.take_while(|_| Instant::now() < deadline) {
        backend.push(job).await.context("apalis push")?;
        sent += 1;
    }
    Ok(sent)
}

/// `push_bulk`, [`BULK`] jobs a call; returns how many.
pub(crate) async fn push_bulk(
    backend: &mut Backend,
    jobs: impl Iterator<Item = RawJob>,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut jobs = jobs.peekable();
    let mut sent = 0;
    while jobs.peek().is_some() && Instant::now() < deadline {
        let bulk: Vec<RawJob> = jobs.by_ref().take(BULK).collect();
        let n = bulk.len() as u64;
        backend.push_bulk(bulk).await.context("apalis push_bulk")?;
        sent += n;
    }
    Ok(sent)
}

/// Waits until apalis-nats' stream holds `n` tasks or `deadline` passes;
/// returns how many it holds.
pub(crate) async fn stored(
    js: &jetstream::Context,
    n: u64,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut stream = js.get_stream(STREAM).await.context("apalis stream")?;
    loop {
        let held = stream.info().await?.state.messages;
        if held >= n || Instant::now() > deadline {
            return Ok(held);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The handler: decode (apalis does it), report.
async fn bench_job(job: RawJob, probe: Data<Arc<Probe>>) -> Result<(), BoxDynError> {
    probe.hit(job.sent_ns);
    Ok(())
}

/// An apalis worker with `concurrency` handlers (its `concurrency` layer)
/// until the probe is done or `deadline` passes.
pub(crate) async fn consume(
    url: &str,
    concurrency: usize,
    probe: Arc<Probe>,
    deadline: Duration,
) -> anyhow::Result<()> {
    let worker = WorkerBuilder::new("natask-bench")
        .backend(backend(url).await?)
        .data(Arc::clone(&probe))
        .concurrency(concurrency)
        .build(bench_job);
    let done = async move {
        probe.wait(deadline).await;
        Ok::<(), WorkerError>(())
    };
    tokio::time::timeout(deadline + Duration::from_secs(30), worker.run_until(done))
        .await
        .context("the apalis worker did not stop within 30 s")?
        .context("apalis worker")?;
    Ok(())
}
