//! Every stream, consumer and key-value bucket natask creates, as the
//! configuration it creates it with. `docs/wire-format.md` documents them.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};

use natask_core::wire::{self, Names};

use crate::policy::{QueuePolicy, Storage, WhenFull};

/// How long dead letters are kept.
pub(crate) const DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

/// How long a task's hand-back count is kept.
const HANDBACK_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

/// How long the marker a released unique lock leaves stays (the server's
/// minimum). Markers only matter to watchers of the bucket; natask reads none.
pub(crate) const LOCK_MARKER_TTL: Duration = Duration::from_secs(1);

/// The key-value buckets natask keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// Each task's state, and cancellation requests.
    Tasks,
    /// Deliveries per task that did not spend an attempt.
    Handbacks,
    /// The locks of unique tasks.
    Unique,
    /// The live catalog: each served task's declaration and schema.
    Catalog,
    /// The worker registry: each running runtime, until its heartbeat's TTL.
    Workers,
}

impl Bucket {
    /// The bucket's name under `names`' prefix.
    pub(crate) fn name(self, names: &Names) -> String {
        match self {
            Bucket::Tasks => names.task_bucket(),
            Bucket::Handbacks => names.handback_bucket(),
            Bucket::Unique => names.unique_bucket(),
            Bucket::Catalog => names.catalog_bucket(),
            Bucket::Workers => names.workers_bucket(),
        }
    }

    fn description(self) -> &'static str {
        match self {
            Bucket::Tasks => "natask: the state of each task, and cancellations",
            Bucket::Handbacks => "natask: deliveries per task that did not spend an attempt",
            Bucket::Unique => {
                "natask: locks of unique tasks (key: queue.task.hash, value: the holder's task id)"
            }
            Bucket::Catalog => {
                "natask: the tasks runtimes serve (key: queue.task), with their payload schemas"
            }
            Bucket::Workers => {
                "natask: running runtimes (key: runtime id), each until its heartbeat's TTL"
            }
        }
    }

    /// The stream behind the bucket, as `jetstream::Context::create_key_value`
    /// would make it (one value per key, rollups, direct gets), so that
    /// `kv::Store` reads and writes it like any bucket. `task_retention`
    /// applies to [`Bucket::Tasks`].
    pub(crate) fn stream_config(
        self,
        names: &Names,
        task_retention: Duration,
        replicas: usize,
    ) -> stream::Config {
        let bucket = self.name(names);
        let (max_age, ttl) = match self {
            Bucket::Tasks => (task_retention, None),
            Bucket::Handbacks => (HANDBACK_RETENTION, None),
            // Each lock carries its own TTL; expired ones leave a marker.
            Bucket::Unique => (Duration::ZERO, Some(LOCK_MARKER_TTL)),
            Bucket::Catalog => (crate::store::fleet::CATALOG_MAX_AGE, None),
            // Each entry carries its own TTL; a lapsed one leaves a marker,
            // so a watcher sees the runtime leave.
            Bucket::Workers => (Duration::ZERO, Some(LOCK_MARKER_TTL)),
        };
        stream::Config {
            name: format!("KV_{bucket}"),
            description: Some(self.description().to_owned()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            allow_message_ttl: ttl.is_some(),
            subject_delete_marker_ttl: ttl,
            ..Default::default()
        }
    }
}

/// The stream of the queue `policy` describes, as natask creates it with
/// `replicas` copies (the policy's own count, else the client's).
pub(crate) fn queue_stream_config(
    names: &Names,
    policy: &QueuePolicy,
    replicas: usize,
) -> stream::Config {
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
        num_replicas: policy.replicas.unwrap_or(replicas),
        max_messages: policy.max_tasks.unwrap_or(-1),
        max_bytes: policy.max_bytes.unwrap_or(-1),
        discard: discard_policy(policy),
        duplicate_window: policy.dedup_window,
        allow_direct: true,
        // Servers before 2.12 ignore the flag; provisioning detects that.
        // A discard-new stream cannot hold schedules (error 10052).
        allow_message_schedules: !refuses_when_full(policy),
        ..Default::default()
    }
}

/// The dead-letter stream, shared by every queue.
pub(crate) fn dead_letter_stream_config(names: &Names, replicas: usize) -> stream::Config {
    stream::Config {
        name: names.dead_letter_stream(),
        description: Some("natask dead letters of every queue".to_owned()),
        subjects: vec![names.dead_letter_filter()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: DEAD_LETTER_MAX_AGE,
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    }
}

/// The stream of event `event`: limits retention (every subscription
/// reads every event; none removes it), events kept `retention`.
pub(crate) fn event_stream_config(
    names: &Names,
    event: &str,
    retention: Duration,
    replicas: usize,
) -> stream::Config {
    stream::Config {
        name: names.event_stream(event),
        description: Some(format!("natask events `{event}`")),
        subjects: names.event_filters(event),
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: retention,
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    }
}

/// The durable consumer of one subscription: the event's published
/// subject and the replays addressed to it, from where `start` says
/// (applied when it is created).
pub(crate) fn subscription_consumer_config(
    names: &Names,
    event: &str,
    subscription: &str,
    start: natask_core::Start,
    settings: &ConsumerSettings,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(subscription.to_owned()),
        description: Some(format!(
            "natask subscription `{subscription}` to events `{event}`"
        )),
        filter_subjects: vec![
            names.event_subject(event),
            names.event_replay_subject(event, subscription),
        ],
        deliver_policy: match start {
            natask_core::Start::New => consumer::DeliverPolicy::New,
            natask_core::Start::All => consumer::DeliverPolicy::All,
        },
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: -1,
        max_ack_pending: settings.max_ack_pending,
        ..Default::default()
    }
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

/// The durable consumer every worker of `queue` shares.
pub(crate) fn consumer_config(
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

fn storage_type(storage: Storage) -> stream::StorageType {
    match storage {
        Storage::File => stream::StorageType::File,
        Storage::Memory => stream::StorageType::Memory,
    }
}

/// Whether the policy has a size limit and refuses tasks beyond it.
pub(crate) fn refuses_when_full(policy: &QueuePolicy) -> bool {
    limited(policy) && policy.when_full == WhenFull::Refuse
}

/// Whether the policy limits the queue's size.
pub(crate) fn limited(policy: &QueuePolicy) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_one_value_per_key_under_the_prefix() {
        let names = Names::new("app1");
        let tasks = Bucket::Tasks.stream_config(&names, Duration::from_secs(60), 3);
        assert_eq!(tasks.num_replicas, 3);
        assert_eq!(tasks.name, "KV_APP1_TASKS");
        assert_eq!(tasks.subjects, ["$KV.APP1_TASKS.>"]);
        assert_eq!(tasks.max_messages_per_subject, 1);
        assert_eq!(tasks.max_age, Duration::from_secs(60));
        assert!(!tasks.allow_message_ttl);
        let unique = Bucket::Unique.stream_config(&names, Duration::from_secs(60), 1);
        assert!(unique.allow_message_ttl);
        assert_eq!(unique.subject_delete_marker_ttl, Some(LOCK_MARKER_TTL));
        assert_eq!(
            Bucket::Handbacks
                .stream_config(&names, Duration::ZERO, 1)
                .name,
            "KV_APP1_HANDBACKS"
        );
    }
}
