//! The scenarios. Each runs natask and the raw baseline (and, in 10,
//! apalis-nats) back to back on a fresh server of its own, and returns rows
//! of both figures.

mod headline;
mod measure;
mod peers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use natask_runtime::Client;
use natask_testing::NatsServer;

pub(crate) use headline::{e2e, enqueue_each, pipelined, process};
pub(crate) use peers::{apalis, natask_like_taskiq};

use crate::probe::Probe;
use crate::raw::{self, RawJob};
use crate::report::{Row, Target};
use crate::side::{self, Worker};
use crate::tasks::BenchJob;
use crate::{apalis_side, child};

/// Counts for one run: the full set or the smoke run.
#[derive(Debug, Clone)]
pub(crate) struct Sizes {
    pub(crate) enqueue_each: u64,
    pub(crate) pipelined: u64,
    pub(crate) backlog: u64,
    pub(crate) concurrencies: Vec<usize>,
    pub(crate) e2e_seconds: u64,
    pub(crate) e2e_rates: Vec<u64>,
    pub(crate) backlog_small: u64,
    pub(crate) backlog_large: u64,
    /// Tasks timed out of the large backlog (the rest stay queued).
    pub(crate) backlog_window: u64,
    pub(crate) payloads: Vec<(usize, u64)>,
    pub(crate) taskiq: u64,
    pub(crate) apalis: u64,
    pub(crate) observe: u64,
    /// Longest any one measurement may run.
    pub(crate) cap: Duration,
}

impl Sizes {
    pub(crate) fn full() -> Sizes {
        Sizes {
            enqueue_each: 20_000,
            pipelined: 200_000,
            backlog: 200_000,
            concurrencies: vec![1, 64, 256],
            e2e_seconds: 3,
            e2e_rates: vec![1_000, 10_000],
            backlog_small: 10_000,
            backlog_large: 1_000_000,
            backlog_window: 100_000,
            payloads: vec![(100, 50_000), (10 * 1024, 20_000), (512 * 1024, 500)],
            taskiq: 10_000,
            apalis: 20_000,
            observe: 100_000,
            cap: Duration::from_secs(60),
        }
    }

    pub(crate) fn smoke() -> Sizes {
        Sizes {
            enqueue_each: 1_000,
            pipelined: 1_000,
            backlog: 1_000,
            concurrencies: vec![1, 64, 256],
            e2e_seconds: 1,
            e2e_rates: vec![1_000],
            backlog_small: 1_000,
            backlog_large: 5_000,
            backlog_window: 1_000,
            payloads: vec![(100, 1_000), (10 * 1024, 200), (512 * 1024, 10)],
            taskiq: 1_000,
            apalis: 1_000,
            observe: 1_000,
            cap: Duration::from_secs(20),
        }
    }
}

/// The ~200 B payload of most scenarios.
pub(crate) const DEFAULT_SIZE: usize = 200;

/// A padding string that makes a job's JSON body about `size` bytes.
pub(crate) fn pad(size: usize) -> String {
    // {"seq":123456,"sent_ns":12345678901,"pad":""} is about 45 bytes.
    "x".repeat(size.saturating_sub(45))
}

fn natask_jobs(n: u64, pad: &str) -> impl Iterator<Item = BenchJob> + '_ {
    (0..n).map(move |seq| BenchJob::new(seq, 0, pad.to_owned()))
}

fn raw_jobs(n: u64, pad: &str) -> impl Iterator<Item = RawJob> + '_ {
    (0..n).map(move |seq| RawJob {
        seq,
        sent_ns: 0,
        pad: pad.to_owned(),
    })
}

fn per_s(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// A server, natask clients and a bare JetStream context on it.
struct Setup {
    _server: NatsServer,
    url: String,
    /// natask as a new user gets it: default settings, task tracking on.
    client: Client,
    /// natask with the bench queue's task tracking off.
    untracked: Client,
    js: jetstream::Context,
}

impl Setup {
    async fn new() -> anyhow::Result<Setup> {
        let server = NatsServer::start();
        let url = server.url();
        let client = side::connect(&url).await?;
        let untracked = side::connect_untracked(&url).await?;
        let js = jetstream::new(async_nats::connect(url.as_str()).await?);
        raw::stream(&js).await?;
        // Provisions natask's queue stream and task bucket, as a first
        // enqueue would.
        side::enqueue_many(&client, natask_jobs(1, "")).await?;
        let setup = Setup {
            _server: server,
            url,
            client,
            untracked,
            js,
        };
        setup.purge().await?;
        Ok(setup)
    }

    /// Empties every stream between measurements: the queues, and the task
    /// bucket, so that each measurement starts with as few tracked tasks.
    async fn purge(&self) -> anyhow::Result<()> {
        let names = self.client.names();
        for name in [
            names.queue_stream(crate::tasks::QUEUE),
            format!("KV_{}", names.task_bucket()),
            raw::STREAM.to_owned(),
            apalis_side::STREAM.to_owned(),
        ] {
            let stream = match self.js.get_stream(&name).await {
                Ok(stream) => stream,
                // apalis-nats' stream exists once scenario 10 has pushed.
                Err(e) if stream_not_found(&e) => continue,
                Err(e) => return Err(e).context("purge"),
            };
            stream.purge().await.context("purge")?;
        }
        Ok(())
    }
}

fn stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Latency figures of one side at one rate.
pub(crate) struct Latencies {
    pub(crate) rate: u64,
    pub(crate) natask: Vec<u64>,
    pub(crate) raw: Vec<u64>,
}

/// 8: what tracing and metrics cost: natask processing with a tracing
/// subscriber and the Prometheus recorder (the `natask-bench-observed`
/// binary, built with natask's `metrics` feature, next to this one) against
/// natask with neither (this binary, without the feature), each worker in a
/// process of its own, alternating, three times each; the mean rates.
pub(crate) async fn observe(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let (n, concurrency, rounds) = (sizes.observe, 256, 3);
    let plain_exe = std::env::current_exe()?;
    let observed_exe = plain_exe.with_file_name("natask-bench-observed");
    let (observed_exe, what) = if observed_exe.exists() {
        (observed_exe, "tracing subscriber + Prometheus recorder")
    } else {
        // e.g. `cargo test`: no second build; tracing alone.
        (
            plain_exe.clone(),
            "tracing subscriber only (no natask-bench-observed binary)",
        )
    };
    let (mut plain, mut observed) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (exe, mode, rates) in [
            (&plain_exe, "natask", &mut plain),
            (&observed_exe, "natask-observed", &mut observed),
        ] {
            s.purge().await?;
            side::enqueue_many(&s.client, natask_jobs(n, &pad)).await?;
            let result = child::spawn_exe(exe, mode, &s.url, n, concurrency).await?;
            anyhow::ensure!(
                result.handled == n,
                "{mode} handled {} of {n}",
                result.handled
            );
            rates.push(result.rate);
        }
    }
    s.purge().await?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let spread = |v: &[f64]| {
        v.iter()
            .map(|r| crate::report::number(*r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(vec![Row::new(
        "8 tracing + metrics on, against off",
        format!("N = {n}, concurrency {concurrency}, mean of {rounds}"),
        "tasks/s",
        mean(&observed),
        mean(&plain),
    )
    .target(Target::AtLeast(0.90))
    .note(format!(
        "on: {what}: {}; off (no subscriber, no `metrics` feature): {}",
        spread(&observed),
        spread(&plain)
    ))])
}

/// 9: what task tracking (on by default) costs: enqueueing (awaiting each
/// ack, and pipelined) and processing at 256 handlers, with tracking on
/// against off, on one server, alternating, best of `rounds`.
pub(crate) async fn tracking(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let queued = side::connect_queued(&s.url).await?;
    let pad = pad(DEFAULT_SIZE);
    let rounds = 2;
    let (each, many, backlog) = (
        sizes.enqueue_each / 4,
        sizes.pipelined / 2,
        sizes.backlog / 2,
    );
    let mut rows = Vec::new();
    let mut best = [[0f64; 3]; 3];
    for _ in 0..rounds {
        for (side_index, client) in [&s.client, &s.untracked, &queued].into_iter().enumerate() {
            s.purge().await?;
            let t = Instant::now();
            let sent = side::enqueue_each(client, natask_jobs(each, &pad), t + sizes.cap).await?;
            best[0][side_index] = best[0][side_index].max(per_s(sent, t.elapsed()));
            s.purge().await?;
            let t = Instant::now();
            let sent = side::enqueue_many(client, natask_jobs(many, &pad)).await?;
            best[1][side_index] = best[1][side_index].max(per_s(sent, t.elapsed()));
            s.purge().await?;
            side::enqueue_many(client, natask_jobs(backlog, &pad)).await?;
            let probe = Arc::new(Probe::new(Instant::now(), backlog, false));
            let t = Instant::now();
            let worker = Worker::start(client, Arc::clone(&probe), 256).await?;
            let finished = probe.wait(sizes.cap).await;
            let rate = per_s(probe.handled(), t.elapsed());
            worker.stop().await?;
            anyhow::ensure!(
                finished,
                "processing {backlog} tasks took over {:?}",
                sizes.cap
            );
            best[2][side_index] = best[2][side_index].max(rate);
        }
    }
    s.purge().await?;
    let measured = [
        (
            "9 task tracking: enqueue, awaiting each ack",
            "9 task tracking with the queued state written: enqueue, awaiting each ack",
            each,
        ),
        (
            "9 task tracking: enqueue, pipelined (256 in flight)",
            "9 task tracking with the queued state written: enqueue, pipelined (256 in flight)",
            many,
        ),
        (
            "9 task tracking: processing, concurrency 256",
            "9 task tracking with the queued state written: processing, concurrency 256",
            backlog,
        ),
    ];
    for (i, (what, _, n)) in measured.into_iter().enumerate() {
        rows.push(
            Row::new(
                what,
                format!("N = {n}, best of {rounds}"),
                "tasks/s",
                best[i][0],
                best[i][1],
            )
            .note("on: one key-value entry per task, written at the end and at the start of attempts over 250 ms; a waiting task is read from its own subject"),
        );
    }
    for (i, (_, what, n)) in measured.into_iter().enumerate() {
        rows.push(
            Row::new(
                what,
                format!("N = {n}, best of {rounds}"),
                "tasks/s",
                best[i][2],
                best[i][1],
            )
            .note("`track_queued(true)`: tasks share their task type's subject and the entry is also written at enqueue (in the background), as before issue 15"),
        );
    }
    Ok(rows)
}

/// 5: processing rate and worker memory with a small and a large backlog.
pub(crate) async fn backlog(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let concurrency = 256;
    let mut rows = Vec::new();
    let mut costs = Vec::new();
    for (backlog, window) in [
        (sizes.backlog_small, sizes.backlog_small),
        (sizes.backlog_large, sizes.backlog_window),
    ] {
        s.purge().await?;
        side::enqueue_many(&s.client, natask_jobs(backlog, &pad)).await?;
        raw::publish_pipelined(
            &s.js,
            raw_jobs(backlog, &pad),
            256,
            Instant::now() + sizes.cap * 3,
        )
        .await?;
        let natask = child::spawn("natask", &s.url, window, concurrency).await?;
        let raw = child::spawn("raw", &s.url, window, concurrency).await?;
        let metric = format!("{backlog} queued, {window} handled, concurrency {concurrency}");
        rows.push(Row::new(
            "5 backlog scaling: rate",
            metric.clone(),
            "tasks/s",
            natask.rate,
            raw.rate,
        ));
        rows.push(
            Row::new(
                "5 backlog scaling: worker peak RSS",
                metric,
                "MiB",
                natask.hwm_kib as f64 / 1024.0,
                raw.hwm_kib as f64 / 1024.0,
            )
            .natask_target(Target::AtMost(64.0)),
        );
        costs.push((1e6 / natask.rate, 1e6 / raw.rate));
    }
    s.purge().await?;
    if let [(small_n, small_r), (large_n, large_r)] = costs[..] {
        rows.push(
            Row::new(
                "5 backlog scaling: cost per task, large / small",
                format!("{} vs {} queued", sizes.backlog_large, sizes.backlog_small),
                "×",
                large_n / small_n,
                large_r / small_r,
            )
            .natask_target(Target::AtMost(1.15))
            .note(format!(
                "µs per task: natask {small_n:.1} → {large_n:.1}, raw {small_r:.1} → {large_r:.1}"
            )),
        );
    }
    Ok(rows)
}

/// 6: payload sizes, enqueue (pipelined) and processing at concurrency 256.
pub(crate) async fn payload(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let mut rows = Vec::new();
    for &(size, n) in &sizes.payloads {
        let pad = pad(size);
        let label = if size >= 1024 {
            format!("{} KiB", size / 1024)
        } else {
            format!("{size} B")
        };
        rows.push(Row::new(
            "6 payload size: enqueue, pipelined",
            format!("{label}, N = {n}"),
            "tasks/s",
            measure::natask_pipelined(&s, &s.untracked, n, &pad)
                .await?
                .per_s,
            measure::raw_pipelined(&s, n, &pad, sizes.cap).await?.per_s,
        ));
        let natask = measure::natask_process(&s, &s.untracked, n, &pad, 256, sizes.cap).await?;
        let raw = measure::raw_process(&s, n, &pad, 256, sizes.cap).await?;
        rows.push(
            Row::new(
                "6 payload size: processing, concurrency 256",
                format!("{label}, N = {n}"),
                "tasks/s",
                natask.per_s,
                raw.per_s,
            )
            .note(measure::cut_note(
                [("natask", natask), ("raw", raw)],
                sizes.cap,
            )),
        );
    }
    Ok(rows)
}
