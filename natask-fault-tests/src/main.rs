//! A worker process for fault-injection tests, serving the tasks of this
//! crate's library. Prints `ready` once it serves and `stopped` after a
//! graceful stop; the handlers print the rest (see the library).
//!
//! Environment: `NATS_URL` (one URL or a comma-separated list),
//! `NATASK_QUEUES` (comma-separated), `NATASK_CONCURRENCY`,
//! `NATASK_ACK_WAIT_MS`, `NATASK_WORK_MS`, `NATASK_HEARTBEAT_MS`, and for queue `fleet` the
//! policy's `NATASK_FLEET_MAX_IN_FLIGHT` and `NATASK_FLEET_CONCURRENCY`.
//! With `RUST_LOG` set (`RUST_LOG=natask_runtime=debug`), natask's logs go
//! to stderr, which the tests pass through.

use std::time::Duration;

use natask_fault_tests::env_u64;
use natask_runtime::{Client, QueuePolicy, Runtime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
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
        .heartbeat(Duration::from_millis(env_u64(
            "NATASK_HEARTBEAT_MS",
            5_000,
        )?))
        .build()
        .await?;
    println!("ready");
    runtime.run().await?;
    println!("stopped");
    Ok(())
}
