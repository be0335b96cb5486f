//! A worker in a process of its own, so that its peak memory is its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::probe::Probe;
use crate::{raw, side};

/// What the child prints as its one line of JSON.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChildResult {
    pub(crate) handled: u64,
    /// Tasks per second between the first and the last handler start.
    pub(crate) rate: f64,
    /// VmHWM: peak resident memory, in KiB.
    pub(crate) hwm_kib: u64,
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `natask-bench worker <natask|natask-default|natask-observed|raw> <url>
/// <count> <concurrency>`: handles `count` tasks of a queue filled by the
/// parent, then reports. `natask` runs with task tracking off,
/// `natask-default` with it on. `natask-observed` first installs a tracing subscriber
/// (INFO, formatted, written to a sink) and serves `/metrics`.
pub(crate) async fn run(args: &[String]) -> anyhow::Result<()> {
    let [mode, url, count, concurrency] = args else {
        anyhow::bail!(
            "usage: natask-bench worker <natask|natask-default|natask-observed|raw> <url> <count> <concurrency>"
        );
    };
    let count: u64 = count.parse()?;
    let concurrency: usize = concurrency.parse()?;
    let deadline = Duration::from_secs(120);
    let probe = Arc::new(Probe::new(Instant::now(), count, false));
    match mode.as_str() {
        "natask" | "natask-observed" | "natask-default" => {
            let observed = mode == "natask-observed";
            if std::env::var_os("NATASK_BENCH_DEBUG").is_some() {
                tracing_subscriber::fmt()
                    .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
                    .with_writer(std::io::stderr)
                    .init();
            } else if observed {
                tracing_subscriber::fmt()
                    .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
                    .with_writer(std::io::sink)
                    .init();
            }
            let client = match mode.as_str() {
                "natask-default" => side::connect(url).await?,
                _ => side::connect_untracked(url).await?,
            };
            let worker =
                side::Worker::start_with(&client, Arc::clone(&probe), concurrency, observed)
                    .await?;
            probe.wait(deadline).await;
            worker.stop().await?;
        }
        "raw" => {
            let nats = async_nats::connect(url.as_str()).await?;
            let js = async_nats::jetstream::new(nats);
            let consumer = raw::consumer(&js).await?;
            raw::consume(&consumer, concurrency, &probe, deadline).await?;
        }
        other => anyhow::bail!("unknown worker mode `{other}`"),
    }
    let result = ChildResult {
        handled: probe.handled(),
        rate: probe.steady_rate(),
        hwm_kib: peak_rss_kib(),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Runs a worker child of this same binary and reads its result.
pub(crate) async fn spawn(
    mode: &str,
    url: &str,
    count: u64,
    concurrency: usize,
) -> anyhow::Result<ChildResult> {
    spawn_exe(&std::env::current_exe()?, mode, url, count, concurrency).await
}

/// Runs a worker child of the bench binary `exe` and reads its result.
pub(crate) async fn spawn_exe(
    exe: &std::path::Path,
    mode: &str,
    url: &str,
    count: u64,
    concurrency: usize,
) -> anyhow::Result<ChildResult> {
    let output = tokio::process::Command::new(exe)
        .args([
            "worker",
            mode,
            url,
            &count.to_string(),
            &concurrency.to_string(),
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output).await??;
    anyhow::ensure!(
        output.status.success(),
        "worker child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(line)?)
}

/// `natask-bench fill <natask|natask-default|raw> <url> <n> [bytes]`: queues `n` tasks of
/// about `bytes` (default 200), for a `worker` run under a profiler.
pub(crate) async fn fill(args: &[String]) -> anyhow::Result<()> {
    let (mode, url, n, size) = match args {
        [mode, url, n] => (mode, url, n, crate::scenarios::DEFAULT_SIZE),
        [mode, url, n, size] => (mode, url, n, size.parse()?),
        _ => {
            anyhow::bail!("usage: natask-bench fill <natask|natask-default|raw> <url> <n> [bytes]")
        }
    };
    let n: u64 = n.parse()?;
    let pad = crate::scenarios::pad(size);
    let deadline = Instant::now() + Duration::from_secs(600);
    let sent = match mode.as_str() {
        "natask" | "natask-default" => {
            let client = match mode.as_str() {
                "natask-default" => side::connect(url).await?,
                _ => side::connect_untracked(url).await?,
            };
            let jobs = (0..n).map(|seq| crate::tasks::BenchJob::new(seq, 0, pad.clone()));
            side::enqueue_many(&client, jobs).await?
        }
        "raw" => {
            let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await?);
            raw::stream(&js).await?;
            let jobs = (0..n).map(|seq| raw::RawJob {
                seq,
                sent_ns: 0,
                pad: pad.clone(),
            });
            raw::publish_pipelined(&js, jobs, 256, deadline).await?
        }
        other => anyhow::bail!("unknown mode `{other}`"),
    };
    println!("queued {sent}");
    Ok(())
}
