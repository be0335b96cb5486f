//! A worker process for fault-injection tests. Prints one line per event on
//! stdout (`ready`, `done <id> <n>`, `crashing <id> attempt=<k>`, `stopped`).
//!
//! Environment: `NATS_URL`, `NATASK_QUEUES` (comma-separated),
//! `NATASK_CONCURRENCY`, `NATASK_ACK_WAIT_MS`, `NATASK_WORK_MS`.

use std::io::Write;
use std::time::Duration;

use natask_runtime::{task, Client, Runtime, TaskContext, TaskError};

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
    let client = Client::connect(&url).await?;
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
