//! The tasks of the `fault-worker` binary, shared with the tests that
//! enqueue them. Each handler prints one line per event on stdout (`done
//! <id> <n> attempt=<k>`, `span <n> <start> <end>`, `crashing <id>
//! attempt=<k>`, `tick <id>`), which the tests read.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use natask_runtime::{task, TaskContext, TaskError};

/// The number in environment variable `name`, or `default` when it is unset.
pub fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} must be a number, got `{v}`")),
        Err(_) => Ok(default),
    }
}

/// A unit of work that takes `NATASK_WORK_MS` milliseconds.
#[task(queue = "faults", retries = 2)]
pub async fn work(ctx: &TaskContext, n: u64) -> Result<(), TaskError> {
    let ms = env_u64("NATASK_WORK_MS", 1).map_err(|e| TaskError::fatal(e.to_string()))?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    println!("done {} {n} attempt={}", ctx.id(), ctx.attempt());
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
pub async fn span(n: u64) -> Result<(), TaskError> {
    let start = micros_now();
    let ms = env_u64("NATASK_WORK_MS", 1).map_err(|e| TaskError::fatal(e.to_string()))?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    println!("span {n} {start} {}", micros_now());
    Ok(())
}

/// Kills its own worker process, every time.
#[task(queue = "crashes", retries = 2)]
pub async fn crash(ctx: &TaskContext) -> Result<(), TaskError> {
    println!("crashing {} attempt={}", ctx.id(), ctx.attempt());
    let _ = std::io::stdout().flush();
    std::process::abort();
}

/// A cron task ticking every second, on its own queue.
#[task(queue = "ticks", cron = "@every 1s")]
pub async fn tick(ctx: &TaskContext) {
    println!("tick {}", ctx.id());
}
