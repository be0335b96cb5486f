//! Serves every task of `natask-example-tasks` until ctrl-c or SIGTERM.
//! Connects with the NATS context `$NATS_CONTEXT` if set (as `nats --context`
//! does: URL, credentials, TLS), else to `$NATS_URL` (default
//! `nats://127.0.0.1:4222`); `$NATASK_CONCURRENCY`
//! sets the handlers per queue; `$NATASK_HTTP` (e.g. `127.0.0.1:9090`) serves
//! `/metrics`, `/healthz` and `/readyz` there.

// The one line that links the tasks crate. This binary mentions nothing
// else from it, and a crate that is never mentioned is not linked, so its
// `#[task]`s would be missing from the registry.
use natask_example_tasks as _;

use natask_runtime::{Client, Runtime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "natask_runtime=info".to_owned()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let client = match std::env::var("NATS_CONTEXT") {
        Ok(context) if !context.is_empty() => Client::from_context(&context).await?,
        _ => Client::connect(&url).await?,
    };
    let mut builder = Runtime::builder(client);
    if let Ok(n) = std::env::var("NATASK_CONCURRENCY") {
        builder = builder.concurrency(
            n.parse()
                .map_err(|_| anyhow::anyhow!("NATASK_CONCURRENCY must be a number, got `{n}`"))?,
        );
    }
    if let Ok(addr) = std::env::var("NATASK_HTTP") {
        // e.g. NATASK_HTTP=127.0.0.1:9090, then curl 127.0.0.1:9090/metrics
        // (port 0 picks a free one; the line below says which)
        builder = builder.http(
            addr.parse()
                .map_err(|_| anyhow::anyhow!("NATASK_HTTP must be host:port, got `{addr}`"))?,
        );
    }
    let runtime = builder.build().await?;
    if let Some(addr) = runtime.http_addr() {
        println!("metrics at http://{addr}/metrics (health: /healthz, /readyz)");
    }
    println!("worker ready: serving {:?}", runtime.queues());
    runtime.run().await?;
    println!("worker stopped");
    Ok(())
}
