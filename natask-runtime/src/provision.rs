//! Creates (or finds) the streams and consumers natask needs.
//!
//! Provisioning is idempotent: `get_or_create` leaves an existing stream or
//! consumer as it is, so several producers and workers may start at once.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use natask_core::wire::{self, Names};

/// How long dead letters are kept.
pub(crate) const DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

/// A stream or consumer could not be created or looked up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The stream could not be created or found.
    #[error("stream `{stream}` could not be created or found")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What JetStream answered.
        #[source]
        source: async_nats::Error,
    },
    /// The consumer could not be created or found.
    #[error("consumer `{consumer}` on stream `{stream}` could not be created or found")]
    Consumer {
        /// The stream's name.
        stream: String,
        /// The consumer's name.
        consumer: String,
        /// What JetStream answered.
        #[source]
        source: async_nats::Error,
    },
}

pub(crate) fn queue_stream_config(names: &Names, queue: &str) -> stream::Config {
    stream::Config {
        name: names.queue_stream(queue),
        description: Some(format!("natask work queue `{queue}`")),
        // Delayed tasks wait as schedule messages in the queue's own stream:
        // the server only produces into the stream holding the schedule
        // (error 10190 otherwise). The consumer's filter leaves them out.
        subjects: vec![names.queue_filter(queue), names.schedule_filter(queue)],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        // Servers before 2.12 ignore the flag; `schedules` detects that.
        allow_message_schedules: true,
        ..Default::default()
    }
}

pub(crate) async fn queue_stream(
    js: &jetstream::Context,
    names: &Names,
    queue: &str,
) -> Result<stream::Stream, ProvisionError> {
    let config = queue_stream_config(names, queue);
    let name = config.name.clone();
    js.get_or_create_stream(config)
        .await
        .map_err(|e| ProvisionError::Stream {
            stream: name,
            source: e.into(),
        })
}

/// Makes the stream of `queue` hold delayed tasks: creates it, or turns on
/// message schedules and adds the schedule subjects to a stream created
/// before natask had delayed tasks (the server cannot turn the flag off
/// again). Returns whether the server honours the flag: servers before 2.12
/// silently drop it and would store schedules as plain messages.
pub(crate) async fn schedules(
    js: &jetstream::Context,
    names: &Names,
    queue: &str,
) -> Result<bool, ProvisionError> {
    let stream = queue_stream(js, names, queue).await?;
    let mut config = stream.cached_info().config.clone();
    let subject = names.schedule_filter(queue);
    if config.allow_message_schedules && config.subjects.contains(&subject) {
        return Ok(true);
    }
    config.allow_message_schedules = true;
    if !config.subjects.contains(&subject) {
        config.subjects.push(subject);
    }
    let info = js
        .update_stream(&config)
        .await
        .map_err(|e| ProvisionError::Stream {
            stream: config.name.clone(),
            source: e.into(),
        })?;
    Ok(info.config.allow_message_schedules)
}

pub(crate) async fn dead_letter_stream(
    js: &jetstream::Context,
    names: &Names,
) -> Result<stream::Stream, ProvisionError> {
    let name = names.dead_letter_stream();
    js.get_or_create_stream(stream::Config {
        name: name.clone(),
        description: Some("natask dead letters of every queue".to_owned()),
        subjects: vec![names.dead_letter_filter()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: DEAD_LETTER_MAX_AGE,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    })
    .await
    .map_err(|e| ProvisionError::Stream {
        stream: name,
        source: e.into(),
    })
}

/// Settings of a queue's shared consumer.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerSettings {
    pub(crate) ack_wait: Duration,
    pub(crate) max_ack_pending: i64,
}

pub(crate) async fn queue_consumer(
    js: &jetstream::Context,
    names: &Names,
    queue: &str,
    settings: &ConsumerSettings,
) -> Result<consumer::PullConsumer, ProvisionError> {
    let stream = queue_stream(js, names, queue).await?;
    stream
        .get_or_create_consumer(
            wire::CONSUMER,
            consumer::pull::Config {
                durable_name: Some(wire::CONSUMER.to_owned()),
                description: Some(format!("natask workers of queue `{queue}`")),
                filter_subject: names.queue_filter(queue),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                // natask counts attempts itself and dead-letters when they
                // run out, so the server must never drop a task silently.
                max_deliver: -1,
                max_ack_pending: settings.max_ack_pending,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ProvisionError::Consumer {
            stream: names.queue_stream(queue),
            consumer: wire::CONSUMER.to_owned(),
            source: e.into(),
        })
}
