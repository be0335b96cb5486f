//! One side's timed measurement on a [`Setup`]: natask (with the client it
//! is given), raw async-nats or apalis-nats. The scenarios put them side by
//! side in rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use natask_runtime::Client;

use super::{natask_jobs, per_s, raw_jobs, Setup};
use crate::apalis_side;
use crate::probe::Probe;
use crate::raw::{self, RawJob};
use crate::side::{self, Worker};
use crate::tasks::BenchJob;

/// A rate in tasks/s, and whether the time cap cut its measurement short.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rate {
    pub(super) per_s: f64,
    pub(super) cut: bool,
}

/// Which sides of a row the time cap cut short, if any.
pub(super) fn cut_note<const N: usize>(sides: [(&str, Rate); N], cap: Duration) -> String {
    sides
        .into_iter()
        .filter(|(_, rate)| rate.cut)
        .map(|(side, _)| format!("{side} cut at {cap:?}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The warm-up before an enqueue measurement of `n`.
fn warm_up(n: u64) -> u64 {
    (n / 20).min(5_000)
}

/// Runs `enqueue` for a warm-up, purges, then times it for `n` tasks and
/// purges again: the rate of the tasks it reports enqueued, cut when fewer
/// than `n` (its deadline passed).
async fn warmed_up<F, Fut>(s: &Setup, n: u64, mut enqueue: F) -> anyhow::Result<Rate>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    enqueue(warm_up(n)).await?;
    s.purge().await?;
    let t = Instant::now();
    let sent = enqueue(n).await?;
    let rate = Rate {
        per_s: per_s(sent, t.elapsed()),
        cut: sent < n,
    };
    s.purge().await?;
    Ok(rate)
}

/// natask: `n` enqueues, each awaited.
pub(super) async fn natask_enqueue_each(
    s: &Setup,
    client: &Client,
    n: u64,
    pad: &str,
    cap: Duration,
) -> anyhow::Result<Rate> {
    warmed_up(s, n, |k| {
        side::enqueue_each(client, natask_jobs(k, pad), Instant::now() + cap)
    })
    .await
}

/// raw: `n` publishes, each ack awaited.
pub(super) async fn raw_publish_each(
    s: &Setup,
    n: u64,
    pad: &str,
    cap: Duration,
) -> anyhow::Result<Rate> {
    warmed_up(s, n, |k| {
        raw::publish_each(&s.js, raw_jobs(k, pad), Instant::now() + cap)
    })
    .await
}

/// natask: `Client::enqueue_many` of `n` (256 in flight).
pub(super) async fn natask_pipelined(
    s: &Setup,
    client: &Client,
    n: u64,
    pad: &str,
) -> anyhow::Result<Rate> {
    warmed_up(s, n, |k| side::enqueue_many(client, natask_jobs(k, pad))).await
}

/// raw: `n` publishes with 256 acks outstanding.
pub(super) async fn raw_pipelined(
    s: &Setup,
    n: u64,
    pad: &str,
    cap: Duration,
) -> anyhow::Result<Rate> {
    warmed_up(s, n, |k| {
        raw::publish_pipelined(&s.js, raw_jobs(k, pad), 256, Instant::now() + cap)
    })
    .await
}

/// apalis-nats: `n` pushes, each awaited (`bulk` false) or 256 a
/// `push_bulk` call, each timed until its stream holds them, since `push`
/// does not wait for JetStream's ack.
pub(super) async fn apalis_enqueue(
    s: &Setup,
    n: u64,
    pad: &str,
    bulk: bool,
    cap: Duration,
) -> anyhow::Result<Rate> {
    // One backend for the warm-up and the measurement (a clone would set
    // its stream and consumer up again); the lock is never contended.
    let backend = &tokio::sync::Mutex::new(apalis_side::backend(&s.url).await?);
    warmed_up(s, n, |k| async move {
        let mut backend = backend.lock().await;
        let deadline = Instant::now() + cap;
        let jobs = raw_jobs(k, pad);
        let sent = if bulk {
            apalis_side::push_bulk(&mut backend, jobs, deadline).await?
        } else {
            apalis_side::push_each(&mut backend, jobs, deadline).await?
        };
        apalis_side::stored(&s.js, sent, deadline).await
    })
    .await
}

/// Purges, `fill`s the queue with `n` tasks, then runs `handle` with a
/// probe until it has counted them all or the time cap passed, and purges
/// again; the rate from `handle`'s start to the last task's start.
async fn backlog_handled<Fill, Filled, Handle, Handled>(
    s: &Setup,
    n: u64,
    fill: Fill,
    handle: Handle,
) -> anyhow::Result<Rate>
where
    Fill: FnOnce() -> Filled,
    Filled: std::future::Future<Output = anyhow::Result<u64>>,
    Handle: FnOnce(Arc<Probe>) -> Handled,
    Handled: std::future::Future<Output = anyhow::Result<()>>,
{
    s.purge().await?;
    let queued = fill().await?;
    anyhow::ensure!(queued == n, "queued {queued} of {n} tasks");
    let probe = Arc::new(Probe::new(Instant::now(), n, false));
    handle(Arc::clone(&probe)).await?;
    s.purge().await?;
    Ok(Rate {
        per_s: probe.rate_from_origin(),
        cut: probe.handled() < n,
    })
}

/// natask: a backlog of `n` handled by a worker at `concurrency`.
pub(super) async fn natask_process(
    s: &Setup,
    client: &Client,
    n: u64,
    pad: &str,
    concurrency: usize,
    cap: Duration,
) -> anyhow::Result<Rate> {
    let fill = || side::enqueue_many(client, natask_jobs(n, pad));
    backlog_handled(s, n, fill, |probe| async move {
        let worker = Worker::start(client, Arc::clone(&probe), concurrency).await?;
        probe.wait(cap).await;
        worker.stop().await
    })
    .await
}

/// raw: the same with async-nats' consumer stream.
pub(super) async fn raw_process(
    s: &Setup,
    n: u64,
    pad: &str,
    concurrency: usize,
    cap: Duration,
) -> anyhow::Result<Rate> {
    let deadline = Instant::now() + cap;
    let fill = || raw::publish_pipelined(&s.js, raw_jobs(n, pad), 256, deadline);
    backlog_handled(s, n, fill, |probe| async move {
        let consumer = raw::consumer(&s.js).await?;
        raw::consume(&consumer, concurrency, &probe, cap).await
    })
    .await
}

/// apalis-nats: the same with an apalis worker.
pub(super) async fn apalis_process(
    s: &Setup,
    n: u64,
    pad: &str,
    concurrency: usize,
    cap: Duration,
) -> anyhow::Result<Rate> {
    let fill = || async {
        let deadline = Instant::now() + cap;
        let mut backend = apalis_side::backend(&s.url).await?;
        let sent = apalis_side::push_bulk(&mut backend, raw_jobs(n, pad), deadline).await?;
        apalis_side::stored(&s.js, sent, deadline).await
    };
    backlog_handled(s, n, fill, |probe| {
        apalis_side::consume(&s.url, concurrency, probe, cap)
    })
    .await
}

/// Percentile `p` (0–100) of sorted nanoseconds, in milliseconds.
pub(super) fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

/// Enqueues at `rate` per second for `seconds`, each task in a task of its
/// own (a producer serving requests), through `enqueue`.
async fn drive<F, Fut>(rate: u64, seconds: u64, probe: &Probe, enqueue: F) -> anyhow::Result<()>
where
    F: Fn(u64, u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let total = rate * seconds;
    let per_tick = (rate / 1000).max(1);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(per_tick as f64 / rate as f64));
    let mut sends = tokio::task::JoinSet::new();
    let mut seq = 0;
    while seq < total {
        ticker.tick().await;
        for _ in 0..per_tick.min(total - seq) {
            sends.spawn(enqueue(seq, probe.now_ns().max(1)));
            seq += 1;
        }
    }
    while let Some(sent) = sends.join_next().await {
        sent??;
    }
    Ok(())
}

/// The end-to-end warm-up: tasks handled before the offered load starts.
const E2E_WARM: u64 = 200;

/// natask: a worker with `concurrency` handlers while a producer offers
/// `rate` tasks/s for `seconds`; the sorted latencies, enqueue → handler
/// start.
pub(super) async fn natask_e2e(
    s: &Setup,
    client: &Client,
    rate: u64,
    seconds: u64,
    concurrency: usize,
    pad: &str,
    cap: Duration,
) -> anyhow::Result<Vec<u64>> {
    let probe = Arc::new(Probe::new(Instant::now(), E2E_WARM + rate * seconds, true));
    let worker = Worker::start(client, Arc::clone(&probe), concurrency).await?;
    side::enqueue_many(client, natask_jobs(E2E_WARM, pad)).await?;
    wait_for(&probe, E2E_WARM, cap).await?;
    let producer = client.clone();
    let pad = pad.to_owned();
    drive(rate, seconds, &probe, move |seq, sent_ns| {
        let client = producer.clone();
        let job = BenchJob::new(seq, sent_ns, pad.clone());
        async move {
            client.enqueue(&job).await?;
            Ok(())
        }
    })
    .await?;
    probe.wait(cap).await;
    worker.stop().await?;
    s.purge().await?;
    Ok(probe.latencies())
}

/// raw: the same with async-nats' consumer stream and publishes.
pub(super) async fn raw_e2e(
    s: &Setup,
    rate: u64,
    seconds: u64,
    concurrency: usize,
    pad: &str,
    cap: Duration,
) -> anyhow::Result<Vec<u64>> {
    let probe = Arc::new(Probe::new(Instant::now(), E2E_WARM + rate * seconds, true));
    let consumer = raw::consumer(&s.js).await?;
    let consuming = {
        let probe = Arc::clone(&probe);
        tokio::spawn(async move { raw::consume(&consumer, concurrency, &probe, cap).await })
    };
    raw::publish_pipelined(&s.js, raw_jobs(E2E_WARM, pad), 256, Instant::now() + cap).await?;
    wait_for(&probe, E2E_WARM, cap).await?;
    let js = s.js.clone();
    let pad = pad.to_owned();
    drive(rate, seconds, &probe, move |seq, sent_ns| {
        let js = js.clone();
        let job = RawJob {
            seq,
            sent_ns,
            pad: pad.clone(),
        };
        async move { raw::publish_one(&js, job).await }
    })
    .await?;
    consuming.await??;
    s.purge().await?;
    Ok(probe.latencies())
}

async fn wait_for(probe: &Probe, n: u64, cap: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + cap;
    while probe.handled() < n {
        anyhow::ensure!(
            Instant::now() < until,
            "warm-up tasks were not handled within {cap:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
