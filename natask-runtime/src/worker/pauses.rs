//! A worker's log of its queue's pauses: a paused queue is otherwise
//! silent on the worker side, since the server simply holds the worker's
//! pull requests, which looks exactly like an empty queue. Pausing is an
//! operator's act ([`Queue::pause`](crate::Queue::pause)).

use std::time::SystemTime;

use async_nats::jetstream::consumer;
use futures_util::StreamExt;

use natask_core::wire;

use crate::client::queue::describe;
use crate::Client;

/// The part of JetStream's `io.nats.jetstream.advisory.v1.consumer_pause`
/// advisory the workers log.
#[derive(serde::Deserialize)]
struct PauseAdvisory {
    paused: bool,
    #[serde(default)]
    pause_until: Option<String>,
}

/// Says at INFO if `consumer` (of `queue`) is paused, and subscribes to
/// the pause advisories the server publishes for it, for [`log_pauses`].
///
/// A paused queue is otherwise silent on the worker side: the server simply
/// holds the worker's pull requests, which looks exactly like an empty queue.
pub(crate) async fn follow_pauses(
    client: &Client,
    queue: &'static str,
    consumer: &consumer::Info,
) -> Option<async_nats::Subscriber> {
    if consumer.paused {
        let until = consumer.config.pause_until.map(SystemTime::from);
        tracing::info!(
            queue,
            pause = %until.map_or_else(|| "until resumed".to_owned(), describe),
            "queue is paused; its workers fetch no tasks until it is resumed"
        );
    }
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.{}.{}",
        client.names().queue_stream(queue),
        wire::CONSUMER
    );
    match client.nats().subscribe(subject).await {
        Ok(subscriber) => Some(subscriber),
        Err(e) => {
            tracing::debug!(queue, error = %e, "cannot follow pause advisories; pauses are not logged");
            None
        }
    }
}

/// Logs at INFO, once per advisory, that `queue` was paused or resumed,
/// until `stop`.
pub(crate) async fn log_pauses(
    queue: &'static str,
    mut advisories: async_nats::Subscriber,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let advisory = tokio::select! {
            advisory = advisories.next() => advisory,
            () = stop.cancelled() => break,
        };
        let Some(advisory) = advisory else { break };
        match serde_json::from_slice::<PauseAdvisory>(&advisory.payload) {
            Ok(PauseAdvisory {
                paused: true,
                pause_until,
            }) => {
                let until = pause_until
                    .and_then(|t| async_nats::datetime::parse_rfc3339(&t).ok())
                    .map(SystemTime::from);
                tracing::info!(
                    queue,
                    pause = %until.map_or_else(|| "until resumed".to_owned(), describe),
                    "queue paused; running tasks finish, no new ones are fetched until it is resumed"
                );
            }
            Ok(PauseAdvisory { paused: false, .. }) => {
                tracing::info!(queue, "queue resumed; fetching tasks again");
            }
            Err(e) => tracing::debug!(queue, error = %e, "unreadable pause advisory"),
        }
    }
    let _ = advisories.unsubscribe().await;
}
