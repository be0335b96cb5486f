//! A worker process for fault-injection tests. Prints one line per event on
//! stdout (`ready`, `done <id> <n>`, `crashing <id> attempt=<k>`, `stopped`).
//!
//! Environment: `NATS_URL`, `NATASK_QUEUES` (comma-separated),
//! `NATASK_CONCURRENCY`, `NATASK_ACK_WAIT_MS`, `NATASK_WORK_MS`, and for
//! queue `fleet` the policy's `NATASK_FLEET_MAX_IN_FLIGHT` and
//! `NATASK_FLEET_CONCURRENCY`.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use natask_runtime::{task, Client, QueuePolicy, Runtime, TaskContext, TaskError};

fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} must be a number, got `{v}`")),
        Err(_) => Ok(default),
    }
}

/// A unit of work that takes `NATASK_WORK_MS` milliseconds.
#[task(queue = "faults", retries = 2)]
async fn work(ctx: &TaskContext, n: u64) -> Result<(), TaskError> {
    let ms = env_u64("NATASK_WORK_MS", 1).map_err(|e| TaskError::fatal(e.to_string()))?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    println!("done {} {n}", ctx.id());
    Ok(())
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Holds a slot for `NATASK_WORK_MS` milliseconds and prints when it started
/// and ended (`span <n> <start µs> <end µs>`, wall clock): the interval lies
/// inside the time the task was in flight, so overlaps of these intervals
/// never exceed the tasks in flight at once.
#[task(queue = "fleet")]
async fn span(n: u64) -> Result<(), TaskError> {
    let start = micros_now();
    let ms = env_u64("NATASK_WORK_MS", 1).map_err(|e| TaskError::fatal(e.to_string()))?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    println!("span {n} {start} {}", micros_now());
    Ok(())
}

/// Kills its own worker process, every time.
#[task(queue = "crashes", retries = 2)]
async fn crash(ctx: &TaskContext) -> Result<(), TaskError> {
    println!("crashing {} attempt={}", ctx.id(), ctx.attempt());
    let _ = std::io::stdout().flush();
    std::process::abort();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let queues = std::env::var("NATASK_QUEUES").unwrap_or_else(|_| "faults".to_owned());
    let mut client = Client::connect(&url).await?;
    if let Ok(n) = std::env::var("NATASK_FLEET_MAX_IN_FLIGHT") {
        client = client.with_queue(
            QueuePolicy::new("fleet")
                .max_in_flight(n.parse()?)
                .concurrency(usize::try_from(env_u64("NATASK_FLEET_CONCURRENCY", 4)?)?),
        )?;
    }
    let runtime = Runtime::builder(client)
        .queues(queues.split(','))
        .concurrency(usize::try_from(env_u64("NATASK_CONCURRENCY", 16)?)?)
        .ack_wait(Duration::from_millis(env_u64(
            "NATASK_ACK_WAIT_MS",
            30_000,
        )?))
        .build()
        .await?;
    println!("ready");
    runtime.run().await?;
    println!("stopped");
    Ok(())
}
