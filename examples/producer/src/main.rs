//! Enqueues example tasks: `producer [COUNT]` (default 3 of each kind),
//! publishes one event (`UserSignedUp`, handled by two services), then waits (up to 10 s) for the last one's outcome and prints its state
//! and result. Connects with the NATS context `$NATS_CONTEXT` if set (as
//! `nats --context` does: URL, credentials, TLS), else to `$NATS_URL`
//! (default `nats://127.0.0.1:4222`).

use natask_example_tasks::{Format, ResizeImage, SendEmail, Target, UserSignedUp};
use natask_runtime::{Client, EnqueueError, TaskId};

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
    let last = enqueue_examples(&client, count).await?;
    // An event: every subscribed service (here mailer and analytics)
    // handles it once.
    let signup = UserSignedUp {
        email: "user1@example.com".to_owned(),
    };
    let published = signup.publish(&client).await?;
    println!("published user_signed_up id={}", published.id);
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

/// Enqueues `count` tasks of each kind; returns the id of the last one.
async fn enqueue_examples(client: &Client, count: u32) -> Result<Option<TaskId>, EnqueueError> {
    let mut last = None;
    for i in 1..=count {
        let email = SendEmail::new(format!("user{i}@example.com"), format!("Welcome, #{i}"));
        let id = email.enqueue(client).await?.id;
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
        let id = image.enqueue(client).await?.id;
        println!("enqueued resize_image id={id} url={}", image.url);
        last = Some(id);
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use natask_runtime::testing;

    use super::*;

    // No server: the recording client keeps what would have been sent.
    #[tokio::test]
    async fn enqueues_an_email_and_an_image_per_round() {
        let client = Client::recording();
        let last = enqueue_examples(&client, 2).await.unwrap();

        let emails = testing::enqueued::<SendEmail>(&client);
        let to: Vec<&str> = emails.iter().map(|e| e.to.as_str()).collect();
        assert_eq!(to, ["user1@example.com", "user2@example.com"]);
        testing::assert_enqueued::<ResizeImage>(&client, |t| {
            t.url == "https://img.example.com/2.jpg" && t.target.width == 640
        });
        testing::refute_enqueued::<ResizeImage>(&client, |t| t.url.is_empty());
        let recorded = testing::recorded(&client);
        assert_eq!(recorded.len(), 4);
        assert_eq!(last, Some(recorded[3].id));
    }

    // The recorded tasks run through their real handlers.
    #[tokio::test]
    async fn every_enqueued_task_succeeds() {
        let client = Client::recording();
        enqueue_examples(&client, 1).await.unwrap();
        let drained = testing::drain(&client).await;
        assert_eq!(drained.len(), 2);
        assert!(drained.iter().all(|d| d.succeeded() && d.attempts == 1));
        assert_eq!(
            drained[1].last.output::<String>(),
            "https://img.example.com/1.jpg@320w"
        );
    }
}
