//! The scenarios. Each runs natask and the raw baseline back to back on a
//! fresh server of its own, and returns rows of both figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use natask_runtime::Client;
use natask_testing::NatsServer;

use crate::probe::Probe;
use crate::raw::{self, RawJob};
use crate::report::{Row, Target};
use crate::side::{self, Worker};
use crate::tasks::BenchJob;
use crate::{child, Plots};

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
            concurrencies: vec![1, 16, 256],
            e2e_seconds: 3,
            e2e_rates: vec![1_000, 10_000],
            backlog_small: 10_000,
            backlog_large: 1_000_000,
            backlog_window: 100_000,
            payloads: vec![(100, 50_000), (10 * 1024, 20_000), (512 * 1024, 500)],
            taskiq: 10_000,
            observe: 100_000,
            cap: Duration::from_secs(60),
        }
    }

    pub(crate) fn smoke() -> Sizes {
        Sizes {
            enqueue_each: 1_000,
            pipelined: 1_000,
            backlog: 1_000,
            concurrencies: vec![1, 16, 256],
            e2e_seconds: 1,
            e2e_rates: vec![1_000],
            backlog_small: 1_000,
            backlog_large: 5_000,
            backlog_window: 1_000,
            payloads: vec![(100, 1_000), (10 * 1024, 200), (512 * 1024, 10)],
            taskiq: 1_000,
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

/// A server, a natask client and a bare JetStream context on it.
struct Setup {
    _server: NatsServer,
    url: String,
    client: Client,
    js: jetstream::Context,
}

impl Setup {
    async fn new() -> anyhow::Result<Setup> {
        let server = NatsServer::start();
        let url = server.url();
        let client = side::connect(&url, false).await?;
        let js = jetstream::new(async_nats::connect(url.as_str()).await?);
        raw::stream(&js).await?;
        // Provisions natask's queue stream, as a first enqueue would.
        side::enqueue_many(&client, natask_jobs(1, "")).await?;
        let setup = Setup {
            _server: server,
            url,
            client,
            js,
        };
        setup.purge().await?;
        Ok(setup)
    }

    /// Empties both streams between measurements.
    async fn purge(&self) -> anyhow::Result<()> {
        for name in [
            self.client.names().queue_stream(crate::tasks::QUEUE),
            raw::STREAM.to_owned(),
        ] {
            self.js
                .get_stream(&name)
                .await?
                .purge()
                .await
                .context("purge")?;
        }
        Ok(())
    }
}

/// 1: one producer awaiting each ack.
pub(crate) async fn enqueue_each(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let n = sizes.enqueue_each;
    let warm = n / 20;
    side::enqueue_each(
        &s.client,
        natask_jobs(warm, &pad),
        Instant::now() + sizes.cap,
    )
    .await?;
    let t = Instant::now();
    let sent = side::enqueue_each(&s.client, natask_jobs(n, &pad), t + sizes.cap).await?;
    let natask = per_s(sent, t.elapsed());
    raw::publish_each(&s.js, raw_jobs(warm, &pad), Instant::now() + sizes.cap).await?;
    let t = Instant::now();
    let sent = raw::publish_each(&s.js, raw_jobs(n, &pad), t + sizes.cap).await?;
    let raw = per_s(sent, t.elapsed());
    Ok(vec![Row::new(
        "1 enqueue, awaiting each ack",
        format!("N = {n}"),
        "tasks/s",
        natask,
        raw,
    )])
}

/// 2: many publishes in flight.
pub(crate) async fn pipelined(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let n = sizes.pipelined;
    let (natask, raw) = pipelined_pair(&s, n, &pad, sizes.cap).await?;
    Ok(vec![Row::new(
        "2 enqueue, pipelined (256 in flight)",
        format!("N = {n}"),
        "tasks/s",
        natask,
        raw,
    )
    .target(Target::AtLeast(0.90))])
}

async fn pipelined_pair(s: &Setup, n: u64, pad: &str, cap: Duration) -> anyhow::Result<(f64, f64)> {
    let warm = (n / 20).min(5_000);
    side::enqueue_many(&s.client, natask_jobs(warm, pad)).await?;
    raw::publish_pipelined(&s.js, raw_jobs(warm, pad), 256, Instant::now() + cap).await?;
    s.purge().await?;
    let t = Instant::now();
    let sent = side::enqueue_many(&s.client, natask_jobs(n, pad)).await?;
    let natask = per_s(sent, t.elapsed());
    let t = Instant::now();
    let sent = raw::publish_pipelined(&s.js, raw_jobs(n, pad), 256, t + cap).await?;
    let raw = per_s(sent, t.elapsed());
    s.purge().await?;
    Ok((natask, raw))
}

/// Fills both queues with `n` tasks, then times handling them all at
/// `concurrency`; rates in tasks/s, natask first.
async fn process_pair(
    s: &Setup,
    n: u64,
    pad: &str,
    concurrency: usize,
    cap: Duration,
) -> anyhow::Result<(f64, f64, String)> {
    let mut note = String::new();
    s.purge().await?;
    side::enqueue_many(&s.client, natask_jobs(n, pad)).await?;
    raw::publish_pipelined(&s.js, raw_jobs(n, pad), 256, Instant::now() + cap).await?;

    let probe = Arc::new(Probe::new(Instant::now(), n, false));
    let t = Instant::now();
    let worker = Worker::start(&s.client, Arc::clone(&probe), concurrency).await?;
    if !probe.wait(cap).await {
        note.push_str(&format!("natask cut at {cap:?}; "));
    }
    let natask = per_s(probe.handled(), t.elapsed());
    worker.stop().await?;

    let probe = Probe::new(Instant::now(), n, false);
    let t = Instant::now();
    let consumer = raw::consumer(&s.js).await?;
    raw::consume(&consumer, concurrency, &probe, cap).await?;
    if probe.handled() < n {
        note.push_str(&format!("raw cut at {cap:?}; "));
    }
    let raw = per_s(probe.handled(), t.elapsed());
    s.purge().await?;
    Ok((natask, raw, note.trim_end_matches("; ").to_owned()))
}

/// 3: processing a pre-filled backlog at several concurrencies.
pub(crate) async fn process(sizes: &Sizes, plots: &mut Plots) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let mut rows = Vec::new();
    for &c in &sizes.concurrencies {
        let (natask, raw, note) = process_pair(&s, sizes.backlog, &pad, c, sizes.cap).await?;
        plots.throughput.push((c, natask, raw));
        let mut row = Row::new(
            "3 processing a backlog",
            format!("N = {}, concurrency {c}", sizes.backlog),
            "tasks/s",
            natask,
            raw,
        )
        .note(note);
        if c == 256 {
            row = row.target(Target::AtLeast(0.80));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Percentile `p` (0–100) of sorted nanoseconds, in milliseconds.
fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
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

/// Latency figures of one side at one rate.
pub(crate) struct Latencies {
    pub(crate) rate: u64,
    pub(crate) natask: Vec<u64>,
    pub(crate) raw: Vec<u64>,
}

/// 4: producer and worker together at a steady offered rate.
pub(crate) async fn e2e(sizes: &Sizes, plots: &mut Plots) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let concurrency = 64;
    let warm = 200;
    let mut rows = Vec::new();
    for &rate in &sizes.e2e_rates {
        let n = rate * sizes.e2e_seconds;
        // natask
        let probe = Arc::new(Probe::new(Instant::now(), warm + n, true));
        let worker = Worker::start(&s.client, Arc::clone(&probe), concurrency).await?;

        side::enqueue_many(&s.client, natask_jobs(warm, &pad)).await?;
        wait_for(&probe, warm, sizes.cap).await?;
        let client = s.client.clone();
        let p = pad.clone();
        drive(rate, sizes.e2e_seconds, &probe, move |seq, sent_ns| {
            let client = client.clone();
            let job = BenchJob::new(seq, sent_ns, p.clone());
            async move {
                client.enqueue(&job).await?;
                Ok(())
            }
        })
        .await?;
        probe.wait(sizes.cap).await;
        worker.stop().await?;
        let natask = probe.latencies();

        // raw
        let probe = Arc::new(Probe::new(Instant::now(), warm + n, true));
        let consumer = raw::consumer(&s.js).await?;
        let consuming = {
            let probe = Arc::clone(&probe);
            let cap = sizes.cap;
            tokio::spawn(async move { raw::consume(&consumer, concurrency, &probe, cap).await })
        };
        raw::publish_pipelined(&s.js, raw_jobs(warm, &pad), 256, Instant::now() + sizes.cap)
            .await?;
        wait_for(&probe, warm, sizes.cap).await?;
        let js = s.js.clone();
        let p = pad.clone();
        drive(rate, sizes.e2e_seconds, &probe, move |seq, sent_ns| {
            let js = js.clone();
            let job = RawJob {
                seq,
                sent_ns,
                pad: p.clone(),
            };
            async move { raw::publish_one(&js, job).await }
        })
        .await?;
        consuming.await??;
        let raw = probe.latencies();
        s.purge().await?;

        let label = |p: &str| format!("{rate}/s offered, {p}");
        for (name, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
            let mut row = Row::new(
                "4 end to end, enqueue → handler start",
                label(name),
                "ms",
                percentile_ms(&natask, p),
                percentile_ms(&raw, p),
            );
            if name == "p50" {
                row = row.target(Target::AtMost(1.25));
            }
            rows.push(row.note(format!("{} / {} samples", natask.len(), raw.len())));
        }
        plots.latencies.push(Latencies { rate, natask, raw });
    }
    Ok(rows)
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
    let tracked = side::connect(&s.url, true).await?;
    let pad = pad(DEFAULT_SIZE);
    let rounds = 2;
    let (each, many, backlog) = (
        sizes.enqueue_each / 4,
        sizes.pipelined / 2,
        sizes.backlog / 2,
    );
    let mut rows = Vec::new();
    let mut best = [[0f64; 2]; 3];
    for _ in 0..rounds {
        for (side_index, client) in [&tracked, &s.client].into_iter().enumerate() {
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
    for (i, (what, n)) in [
        ("9 task tracking: enqueue, awaiting each ack", each),
        ("9 task tracking: enqueue, pipelined (256 in flight)", many),
        ("9 task tracking: processing, concurrency 256", backlog),
    ]
    .into_iter()
    .enumerate()
    {
        rows.push(
            Row::new(
                what,
                format!("N = {n}, best of {rounds}"),
                "tasks/s",
                best[i][0],
                best[i][1],
            )
            .note("on: one key-value entry per task, written at enqueue, start and end"),
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
        let (natask, raw) = pipelined_pair(&s, n, &pad, sizes.cap).await?;
        rows.push(Row::new(
            "6 payload size: enqueue, pipelined",
            format!("{label}, N = {n}"),
            "tasks/s",
            natask,
            raw,
        ));
        let (natask, raw, note) = process_pair(&s, n, &pad, 256, sizes.cap).await?;
        rows.push(
            Row::new(
                "6 payload size: processing, concurrency 256",
                format!("{label}, N = {n}"),
                "tasks/s",
                natask,
                raw,
            )
            .note(note),
        );
    }
    Ok(rows)
}

/// 7, natask's half: the same shape as the taskiq run (each enqueue
/// awaited, then 100 handlers), on the same server.
pub(crate) async fn natask_like_taskiq(
    url: &str,
    n: u64,
    cap: Duration,
) -> anyhow::Result<(f64, f64)> {
    let client = side::connect(url, false).await?;
    let pad = pad(DEFAULT_SIZE);
    let t = Instant::now();
    let sent = side::enqueue_each(&client, natask_jobs(n, &pad), t + cap).await?;
    let enqueue = per_s(sent, t.elapsed());
    let probe = Arc::new(Probe::new(Instant::now(), sent, false));
    let t = Instant::now();
    let worker = Worker::start(&client, Arc::clone(&probe), 100).await?;
    probe.wait(cap).await;
    let process = per_s(probe.handled(), t.elapsed());
    worker.stop().await?;
    Ok((enqueue, process))
}
