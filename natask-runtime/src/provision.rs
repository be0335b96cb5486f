//! Creates (or finds) the streams and consumers natask needs.
//!
//! Provisioning attaches: an existing queue stream or consumer is used as it
//! is, whatever its settings (each difference from the queue's policy is
//! logged as a warning), so several producers and workers may start at once
//! and an operator's changes are never undone. Only
//! [`Client::update_queue`](crate::Client::update_queue) rewrites them.

use std::time::Duration;

use async_nats::jetstream::context::{
    ConsumerInfoError, ConsumerInfoErrorKind, CreateStreamErrorKind, GetStreamErrorKind,
};
use async_nats::jetstream::{self, consumer, stream, ErrorCode};

use natask_core::wire::{self, Names};

use crate::client::Client;
use crate::policy::{Drift, InvalidPolicy, Provisioning, QueuePolicy, Storage, WhenFull};

/// How long dead letters are kept.
pub(crate) const DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

/// A stream or consumer could not be created, looked up or updated.
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
    /// The queue's policy is invalid.
    #[error(transparent)]
    InvalidPolicy(#[from] InvalidPolicy),
    /// The stream or consumer does not exist, and
    /// [`Provisioning::NoCreate`] forbids creating it.
    #[error(
        "{} does not exist, and this client may not create it (Provisioning::NoCreate); \
         whoever manages the NATS account must create it, e.g. by running a natask producer or \
         worker once with the default Provisioning::Create",
        missing_what(stream, consumer.as_deref())
    )]
    Missing {
        /// The stream's name.
        stream: String,
        /// The consumer's name, if the stream exists but the consumer does not.
        consumer: Option<String>,
    },
    /// [`Client::queue_drift`](crate::Client::queue_drift) was asked about a
    /// queue whose stream does not exist yet.
    #[error(
        "stream `{stream}` does not exist yet; it is created by the first enqueue or by a runtime \
         serving the queue"
    )]
    NotFound {
        /// The stream's name.
        stream: String,
    },
    /// The queue refuses tasks when full ([`WhenFull::Refuse`] with
    /// [`QueuePolicy::max_tasks`] or [`QueuePolicy::max_bytes`]) and was
    /// asked to hold delayed tasks, or the other way round: JetStream
    /// cannot do both in one stream.
    #[error(
        "stream `{stream}` cannot both refuse tasks when full (WhenFull::Refuse with max_tasks or \
         max_bytes) and hold delayed tasks: JetStream allows no message schedules on a discard-new \
         stream (error 10052) and cannot turn schedules off once on; give this queue \
         WhenFull::DropOldest or no size limit, or move its delayed and cron tasks to another queue"
    )]
    RefuseWithDelays {
        /// The stream's name.
        stream: String,
    },
    /// The policy asks for a change the server cannot make to an existing
    /// stream.
    #[error(
        "the {field} of stream `{stream}` is {live} and cannot be changed to {wanted} on an \
         existing stream; keep {live} in the queue's policy, or drain the queue, delete its stream \
         and provision it again"
    )]
    Immutable {
        /// The stream's name.
        stream: String,
        /// The setting, as in [`Drift::field`].
        field: &'static str,
        /// The value on the server.
        live: String,
        /// The value the policy asks for.
        wanted: String,
    },
}

fn missing_what(stream: &str, consumer: Option<&str>) -> String {
    match consumer {
        Some(consumer) => format!("consumer `{consumer}` on stream `{stream}`"),
        None => format!("stream `{stream}`"),
    }
}

/// The stream of the queue `policy` describes, as natask creates it.
pub(crate) fn queue_stream_config(names: &Names, policy: &QueuePolicy) -> stream::Config {
    let queue = policy.name();
    stream::Config {
        name: names.queue_stream(queue),
        description: Some(format!("natask work queue `{queue}`")),
        // Delayed tasks wait as schedule messages in the queue's own stream:
        // the server only produces into the stream holding the schedule
        // (error 10190 otherwise). The consumer's filter leaves them out.
        subjects: vec![names.queue_filter(queue), names.schedule_filter(queue)],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: storage_type(policy.storage),
        num_replicas: policy.replicas,
        max_messages: policy.max_tasks.unwrap_or(-1),
        max_bytes: policy.max_bytes.unwrap_or(-1),
        discard: discard_policy(policy),
        duplicate_window: policy.dedup_window,
        allow_direct: true,
        // Servers before 2.12 ignore the flag; `schedules` detects that.
        // A discard-new stream cannot hold schedules (error 10052).
        allow_message_schedules: !refuses_when_full(policy),
        ..Default::default()
    }
}

fn storage_type(storage: Storage) -> stream::StorageType {
    match storage {
        Storage::File => stream::StorageType::File,
        Storage::Memory => stream::StorageType::Memory,
    }
}

/// Whether the policy has a size limit and refuses tasks beyond it.
fn refuses_when_full(policy: &QueuePolicy) -> bool {
    limited(policy) && policy.when_full == WhenFull::Refuse
}

fn limited(policy: &QueuePolicy) -> bool {
    policy.max_tasks.is_some() || policy.max_bytes.is_some()
}

/// Discard-new only where it matters: without a limit, nothing is ever
/// discarded, and discard-old keeps message schedules (delayed tasks) allowed.
fn discard_policy(policy: &QueuePolicy) -> stream::DiscardPolicy {
    if refuses_when_full(policy) {
        stream::DiscardPolicy::New
    } else {
        stream::DiscardPolicy::Old
    }
}

fn limit(n: i64) -> String {
    if n < 0 {
        "unlimited".to_owned()
    } else {
        n.to_string()
    }
}

/// Where the live stream `live` differs from `policy`.
pub(crate) fn stream_drift(live: &stream::Config, policy: &QueuePolicy) -> Vec<Drift> {
    let wanted = queue_stream_config(&Names::default(), policy);
    let mut drift = Vec::new();
    if live.retention != wanted.retention {
        drift.push(Drift::new(
            "retention",
            format!("{:?}", live.retention),
            format!("{:?}", wanted.retention),
        ));
    }
    if live.storage != wanted.storage {
        let name = |s| match s {
            stream::StorageType::Memory => "memory",
            _ => "file",
        };
        drift.push(Drift::new(
            "storage",
            name(live.storage),
            name(wanted.storage),
        ));
    }
    if live.num_replicas.max(1) != wanted.num_replicas {
        drift.push(Drift::new(
            "replicas",
            live.num_replicas.max(1),
            wanted.num_replicas,
        ));
    }
    if live.max_messages != wanted.max_messages {
        drift.push(Drift::new(
            "max_tasks",
            limit(live.max_messages),
            limit(wanted.max_messages),
        ));
    }
    if live.max_bytes != wanted.max_bytes {
        drift.push(Drift::new(
            "max_bytes",
            limit(live.max_bytes),
            limit(wanted.max_bytes),
        ));
    }
    // Without a limit the discard policy never applies, so a stream created
    // before policies (discard old) is not reported.
    if limited(policy) && live.discard != wanted.discard {
        let when_full = |d| match d {
            stream::DiscardPolicy::New => "refuse",
            _ => "drop_oldest",
        };
        drift.push(Drift::new(
            "when_full",
            when_full(live.discard),
            when_full(wanted.discard),
        ));
    }
    if live.duplicate_window != wanted.duplicate_window {
        drift.push(Drift::new(
            "dedup_window",
            format!("{:?}", live.duplicate_window),
            format!("{:?}", wanted.duplicate_window),
        ));
    }
    drift
}

/// Where the live consumer `live` differs from `max_in_flight` and (if
/// given) `ack_wait`.
pub(crate) fn consumer_drift(
    live: &consumer::Config,
    max_in_flight: i64,
    ack_wait: Option<Duration>,
) -> Vec<Drift> {
    let mut drift = Vec::new();
    if live.max_ack_pending != max_in_flight {
        drift.push(Drift::new(
            "max_in_flight",
            live.max_ack_pending,
            max_in_flight,
        ));
    }
    if let Some(wanted) = ack_wait.filter(|w| *w != live.ack_wait) {
        drift.push(Drift::new(
            "ack_wait",
            format!("{:?}", live.ack_wait),
            format!("{wanted:?}"),
        ));
    }
    drift
}

/// Logs one warning per differing setting of an attached stream or
/// consumer, once per client (and the runtimes built from it) and value.
fn warn_drift(client: &Client, queue: &str, what: &str, drift: &[Drift]) {
    for d in drift {
        if !client.first_warning(format!("{queue}\u{0}{what}\u{0}{d}")) {
            continue;
        }
        tracing::warn!(
            queue,
            field = d.field,
            live = %d.live,
            wanted = %d.wanted,
            "the {what} of queue `{queue}` has {} = {} but its policy says {}; natask attached to it \
             as it is (Client::update_queue applies the policy)",
            d.field,
            d.live,
            d.wanted,
        );
    }
}

fn stream_error(stream: &str, source: impl Into<async_nats::Error>) -> ProvisionError {
    ProvisionError::Stream {
        stream: stream.to_owned(),
        source: source.into(),
    }
}

fn consumer_error(stream: &str, source: impl Into<async_nats::Error>) -> ProvisionError {
    ProvisionError::Consumer {
        stream: stream.to_owned(),
        consumer: wire::CONSUMER.to_owned(),
        source: source.into(),
    }
}

/// The stream of `queue` if it exists.
pub(crate) async fn existing_stream(
    js: &jetstream::Context,
    name: &str,
) -> Result<Option<stream::Stream>, ProvisionError> {
    match js.get_stream(name).await {
        Ok(stream) => Ok(Some(stream)),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(js_error)
                if js_error.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(stream_error(name, e)),
        },
    }
}

/// The stream of `queue`: attached to as it is if it exists (warning about
/// every difference from the policy), else created from the policy unless
/// the client may not create streams.
pub(crate) async fn queue_stream(
    client: &Client,
    queue: &str,
) -> Result<stream::Stream, ProvisionError> {
    let policy = client.queue_policy(queue);
    policy.validate()?;
    let js = client.jetstream();
    let config = queue_stream_config(client.names(), &policy);
    let name = config.name.clone();
    if let Some(stream) = existing_stream(js, &name).await? {
        warn_drift(
            client,
            queue,
            "stream",
            &stream_drift(&stream.cached_info().config, &policy),
        );
        return Ok(stream);
    }
    if client.provisioning() == Provisioning::NoCreate {
        return Err(ProvisionError::Missing {
            stream: name,
            consumer: None,
        });
    }
    match js.create_stream(config).await {
        Ok(stream) => Ok(stream),
        // Another process created it meanwhile, from another policy.
        Err(e) if matches!(e.kind(), CreateStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NAME_EXIST) =>
        {
            let stream = js
                .get_stream(&name)
                .await
                .map_err(|e| stream_error(&name, e))?;
            warn_drift(
                client,
                queue,
                "stream",
                &stream_drift(&stream.cached_info().config, &policy),
            );
            Ok(stream)
        }
        Err(e) => Err(stream_error(&name, e)),
    }
}

/// Makes the stream of `queue` hold delayed tasks: creates it, or turns on
/// message schedules and adds the schedule subjects to a stream created
/// before natask had delayed tasks (the server cannot turn the flag off
/// again). Returns whether the server honours the flag: servers before 2.12
/// silently drop it and would store schedules as plain messages.
pub(crate) async fn schedules(client: &Client, queue: &str) -> Result<bool, ProvisionError> {
    let (js, names) = (client.jetstream(), client.names());
    let stream = queue_stream(client, queue).await?;
    let mut config = stream.cached_info().config.clone();
    let subject = names.schedule_filter(queue);
    if config.allow_message_schedules && config.subjects.contains(&subject) {
        return Ok(true);
    }
    if config.discard == stream::DiscardPolicy::New {
        return Err(ProvisionError::RefuseWithDelays {
            stream: config.name,
        });
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
    provisioning: Provisioning,
) -> Result<stream::Stream, ProvisionError> {
    let name = names.dead_letter_stream();
    if provisioning == Provisioning::NoCreate {
        return existing_stream(js, &name)
            .await?
            .ok_or(ProvisionError::Missing {
                stream: name,
                consumer: None,
            });
    }
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

impl ConsumerSettings {
    /// The settings `policy` asks for, with the runtime's `ack_wait` unless
    /// the policy sets its own.
    pub(crate) fn of(policy: &QueuePolicy, ack_wait: Duration) -> ConsumerSettings {
        ConsumerSettings {
            ack_wait: policy.ack_wait.unwrap_or(ack_wait),
            max_ack_pending: policy.max_in_flight,
        }
    }
}

fn consumer_config(
    queue: &str,
    names: &Names,
    settings: &ConsumerSettings,
) -> consumer::pull::Config {
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
    }
}

/// The shared consumer of `stream`, if it exists.
pub(crate) async fn existing_consumer(
    stream: &stream::Stream,
) -> Result<Option<consumer::PullConsumer>, ProvisionError> {
    let name = &stream.cached_info().config.name;
    match stream.get_consumer(wire::CONSUMER).await {
        Ok(consumer) => Ok(Some(consumer)),
        Err(e) => match e.downcast_ref::<ConsumerInfoError>().map(|e| e.kind()) {
            Some(ConsumerInfoErrorKind::NotFound) => Ok(None),
            _ => Err(ProvisionError::Consumer {
                stream: name.clone(),
                consumer: wire::CONSUMER.to_owned(),
                source: e,
            }),
        },
    }
}

/// The shared consumer of `queue` (and its stream): attached to as it is if
/// it exists (warning about every difference from `settings`), else created
/// with `settings` unless the client may not create consumers.
pub(crate) async fn queue_consumer(
    client: &Client,
    queue: &str,
    settings: &ConsumerSettings,
) -> Result<consumer::PullConsumer, ProvisionError> {
    let stream = queue_stream(client, queue).await?;
    let name = stream.cached_info().config.name.clone();
    if let Some(consumer) = existing_consumer(&stream).await? {
        let drift = consumer_drift(
            &consumer.cached_info().config,
            settings.max_ack_pending,
            Some(settings.ack_wait),
        );
        warn_drift(client, queue, "consumer", &drift);
        return Ok(consumer);
    }
    if client.provisioning() == Provisioning::NoCreate {
        return Err(ProvisionError::Missing {
            stream: name,
            consumer: Some(wire::CONSUMER.to_owned()),
        });
    }
    // get_or_create: another worker may have created it meanwhile.
    stream
        .get_or_create_consumer(
            wire::CONSUMER,
            consumer_config(queue, client.names(), settings),
        )
        .await
        .map_err(|e| consumer_error(&name, e))
}

/// What differs between the live stream and consumer of `queue` and its
/// policy. The consumer's `ack_wait` counts only if the policy sets one.
pub(crate) async fn queue_drift(
    client: &Client,
    queue: &str,
) -> Result<Vec<Drift>, ProvisionError> {
    let policy = client.queue_policy(queue);
    policy.validate()?;
    let name = client.names().queue_stream(queue);
    let Some(stream) = existing_stream(client.jetstream(), &name).await? else {
        return Err(ProvisionError::NotFound { stream: name });
    };
    let mut drift = stream_drift(&stream.cached_info().config, &policy);
    if let Some(consumer) = existing_consumer(&stream).await? {
        drift.extend(consumer_drift(
            &consumer.cached_info().config,
            policy.max_in_flight,
            policy.ack_wait,
        ));
    }
    Ok(drift)
}

/// Updates the stream and (if it exists) the consumer of `queue` to its
/// policy; returns what was changed.
pub(crate) async fn update_queue(
    client: &Client,
    queue: &str,
) -> Result<Vec<Drift>, ProvisionError> {
    let policy = client.queue_policy(queue);
    let js = client.jetstream();
    let stream = queue_stream(client, queue).await?;
    let mut live = stream.cached_info().config.clone();
    let name = live.name.clone();
    let mut changed = stream_drift(&live, &policy);
    if let Some(d) = changed
        .iter()
        .find(|d| matches!(d.field, "storage" | "retention"))
    {
        return Err(ProvisionError::Immutable {
            stream: name,
            field: d.field,
            live: d.live.clone(),
            wanted: d.wanted.clone(),
        });
    }
    if !changed.is_empty() {
        let wanted = queue_stream_config(client.names(), &policy);
        live.num_replicas = wanted.num_replicas;
        live.max_messages = wanted.max_messages;
        live.max_bytes = wanted.max_bytes;
        if limited(&policy) {
            if wanted.discard == stream::DiscardPolicy::New && live.allow_message_schedules {
                return Err(ProvisionError::RefuseWithDelays { stream: name });
            }
            live.discard = wanted.discard;
        }
        live.duplicate_window = wanted.duplicate_window;
        js.update_stream(&live)
            .await
            .map_err(|e| stream_error(&name, e))?;
    }
    if let Some(consumer) = existing_consumer(&stream).await? {
        let mut config = consumer.cached_info().config.clone();
        let drift = consumer_drift(&config, policy.max_in_flight, policy.ack_wait);
        if !drift.is_empty() {
            config.max_ack_pending = policy.max_in_flight;
            config.ack_wait = policy.ack_wait.unwrap_or(config.ack_wait);
            stream
                .update_consumer(config)
                .await
                .map_err(|e| consumer_error(&name, e))?;
            changed.extend(drift);
        }
    }
    for d in &changed {
        tracing::info!(queue, field = d.field, from = %d.live, to = %d.wanted, "queue updated to its policy");
    }
    Ok(changed)
}
