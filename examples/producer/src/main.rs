//! Enqueues example tasks: `producer [COUNT]` (default 3 of each kind),
//! then waits (up to 10 s) for the last one's outcome and prints its state
//! and result. Connects with the NATS context `$NATS_CONTEXT` if set (as
//! `nats --context` does: URL, credentials, TLS), else to `$NATS_URL`
//! (default `nats://127.0.0.1:4222`).

use natask_example_tasks::{Format, ResizeImage, SendEmail, Target};
use natask_runtime::Client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let count: u32 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| anyhow::anyhow!("COUNT must be a whole number, got `{n}`"))?,
        None => 3,
    };
    let client = match std::env::var("NATS_CONTEXT") {
        Ok(context) if !context.is_empty() => Client::from_context(&context).await?,
        _ => Client::connect(&url).await?,
    };
    let mut last = None;
    for i in 1..=count {
        let email = SendEmail::new(format!("user{i}@example.com"), format!("Welcome, #{i}"));
        let id = email.enqueue(&client).await?.id;
        println!("enqueued send_email id={id} to={}", email.to);

        let image = ResizeImage {
            url: format!("https://img.example.com/{i}.jpg"),
            target: Target {
                width: 320 * i,
                format: if i % 2 == 0 {
                    Format::Png
                } else {
                    Format::Webp { quality: 80 }
                },
            },
        };
        let id = image.enqueue(&client).await?.id;
        println!("enqueued resize_image id={id} url={}", image.url);
        last = Some(id);
    }
    if let Some(id) = last {
        // Task state by id: `wait` watches it until the task is done.
        match client.wait(id, std::time::Duration::from_secs(10)).await {
            Ok(info) => println!(
                "task {id} {} after {} attempt(s); result: {}",
                info.state,
                info.attempts,
                info.result.unwrap_or_default()
            ),
            Err(e) => println!("{e} (is a worker running?)"),
        }
    }
    Ok(())
}
