//! The baseline: the same JetStream work with async-nats alone.
//!
//! Same stream and consumer settings as natask's provisioning
//! (`natask-runtime/src/jetstream/assets.rs`), same JSON body, a `Nats-Msg-Id` on
//! every publish (deduplication is JetStream work natask asks for too),
//! explicit acks. What it leaves out is exactly the framework: natask's
//! other headers, the task registry, per-task spawning, attempts, leases.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::probe::Probe;

/// The baseline's stream, subjects and consumer.
pub(crate) const STREAM: &str = "RAW_bench";
const SUBJECT: &str = "raw.bench.job";
const FILTER: &str = "raw.bench.>";
const CONSUMER: &str = "workers";

/// The body both sides send: the same fields as natask's `BenchJob`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RawJob {
    pub(crate) seq: u64,
    pub(crate) sent_ns: u64,
    pub(crate) pad: String,
}

/// The stream natask would create for a queue, by hand.
pub(crate) async fn stream(js: &jetstream::Context) -> anyhow::Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![FILTER.to_owned()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    })
    .await
    .context("create the raw stream")
}

/// natask's shared consumer settings at their defaults, by hand.
pub(crate) async fn consumer(js: &jetstream::Context) -> anyhow::Result<consumer::PullConsumer> {
    stream(js)
        .await?
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                filter_subject: FILTER.to_owned(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_deliver: -1,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .context("create the raw consumer")
}

fn message(job: &RawJob) -> anyhow::Result<(HeaderMap, bytes::Bytes)> {
    let body = serde_json::to_vec(job)?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", uuid::Uuid::now_v7().to_string().as_str());
    Ok((headers, body.into()))
}

/// Publishes each job and awaits its ack before the next.
pub(crate) async fn publish_each(
    js: &jetstream::Context,
    jobs: impl Iterator<Item = RawJob>,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    for job in jobs {
        if Instant::now() > deadline {
            break;
        }
        let (headers, body) = message(&job)?;
        js.publish_with_headers(SUBJECT, headers, body)
            .await?
            .await?;
        sent += 1;
    }
    Ok(sent)
}

/// Publishes with up to `in_flight` acks outstanding.
pub(crate) async fn publish_pipelined(
    js: &jetstream::Context,
    jobs: impl Iterator<Item = RawJob>,
    in_flight: usize,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut acks = VecDeque::with_capacity(in_flight);
    let mut sent = 0;
    for job in jobs {
        if Instant::now() > deadline {
            break;
        }
        let (headers, body) = message(&job)?;
        if acks.len() == in_flight {
            let ack: jetstream::context::PublishAckFuture = acks.pop_front().expect("in flight");
            ack.await?;
        }
        acks.push_back(js.publish_with_headers(SUBJECT, headers, body).await?);
        sent += 1;
    }
    for ack in acks {
        ack.await?;
    }
    Ok(sent)
}

/// Publishes one job and awaits its ack: a unit of a rate-driven producer.
pub(crate) async fn publish_one(js: &jetstream::Context, job: RawJob) -> anyhow::Result<()> {
    let (headers, body) = message(&job)?;
    js.publish_with_headers(SUBJECT, headers, body)
        .await?
        .await?;
    Ok(())
}

/// Consumes with `concurrency` handlers at once until the probe is done or
/// `deadline` passes: decode, report, ack. What a user of async-nats writes.
pub(crate) async fn consume(
    consumer: &consumer::PullConsumer,
    concurrency: usize,
    probe: &Probe,
    deadline: Duration,
) -> anyhow::Result<()> {
    let messages = consumer
        .stream()
        // async-nats pulls 200 per request by default; never fewer than the handlers.
        .max_messages_per_batch(concurrency.max(200))
        // The byte bound natask's pull requests have: without it, 256 pulls
        // of 512 KiB overflow the server's per-client buffer (slow consumer).
        .max_bytes_per_batch(8 << 20)
        .messages()
        .await?;
    messages
        .take_until(probe.wait(deadline))
        .for_each_concurrent(concurrency, |msg| async move {
            let Ok(msg) = msg else { return };
            if let Ok(job) = serde_json::from_slice::<RawJob>(&msg.payload) {
                probe.hit(job.sent_ns);
            }
            let _ = msg.ack().await;
        })
        .await;
    Ok(())
}
