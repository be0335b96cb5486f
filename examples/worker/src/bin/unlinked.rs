//! The worker without `use natask_example_tasks as _;`: the tasks crate is a
//! dependency in Cargo.toml but never mentioned, so it is not linked and
//! `build()` fails, explaining the fix.

use natask_runtime::{Client, Runtime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let client = Client::connect(&url).await?;
    let runtime = Runtime::builder(client).build().await?;
    runtime.run().await?;
    Ok(())
}
