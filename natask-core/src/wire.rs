//! The wire format: subjects, stream and consumer names, headers, task ids.
//!
//! `docs/wire-format.md` in the repository describes the same thing for
//! producers written in other languages; keep both in step. The format is
//! versioned by [`FORMAT_VERSION`], sent in [`HEADER_FORMAT`].

use std::fmt;
use std::str::FromStr;

/// Version of the wire format this crate writes. Format 2 leaves out what
/// the message already says elsewhere: the id is its `Nats-Msg-Id` (no
/// [`HEADER_ID`]), the enqueue time its stream timestamp (no
/// [`HEADER_ENQUEUED_AT`]) and the body JSON (no [`HEADER_CONTENT_TYPE`]).
pub const FORMAT_VERSION: &str = "2";

/// Every wire format this crate reads: format 1 (each header spelled out,
/// what hand-written producers of natask 0.1 send) and format 2. A message
/// without [`HEADER_FORMAT`] is format 1.
pub const FORMATS_READ: [&str; 2] = ["1", FORMAT_VERSION];

/// Header carrying the task name (the routing key inside a queue).
pub const HEADER_TASK: &str = "Natask-Task";
/// Header carrying an event's name (events carry it instead of
/// [`HEADER_TASK`]).
pub const HEADER_EVENT: &str = "Natask-Event";
/// Header carrying the task id; without it, the id is the message's
/// [`HEADER_MSG_ID`] (format 2). natask's producers send it only on delayed
/// tasks and events, and a dead letter always has it.
pub const HEADER_ID: &str = "Natask-Id";
/// Header carrying the enqueue time, in milliseconds since the Unix epoch;
/// without it, the time the stream stored the message. natask's producers
/// send it only on delayed tasks.
pub const HEADER_ENQUEUED_AT: &str = "Natask-Enqueued-At";
/// Delayed tasks: when the task is due, in milliseconds since the Unix epoch.
pub const HEADER_DUE_AT: &str = "Natask-Due-At";
/// Unique tasks: the key of the lock the task holds in the unique bucket
/// ([`Names::unique_bucket`]), e.g. `emails.send_report.3f2a…`.
pub const HEADER_UNIQUE: &str = "Natask-Unique";
/// Unique tasks: when the worker releases the lock, `started`, `succeeded` or
/// `finished` ([`crate::unique::Until`]); absent when only its TTL ends it.
pub const HEADER_UNIQUE_UNTIL: &str = "Natask-Unique-Until";
/// Header carrying [`FORMAT_VERSION`].
pub const HEADER_FORMAT: &str = "Natask-Format";
/// Header carrying a task's payload version (`#[task(version = ..)]`) when
/// above 1; absent means 1.
pub const HEADER_VERSION: &str = "Natask-Version";
/// Header carrying a signed task's signature: `<key id>.<ed25519 signature,
/// base64url without padding>` (see `docs/wire-format.md`).
pub const HEADER_SIGNATURE: &str = "Natask-Signature";
/// JetStream's publish deduplication header; natask sets it to the task id.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Dead letters: the queue the task was taken from.
pub const HEADER_QUEUE: &str = "Natask-Queue";
/// Dead letters: why the task was parked (`exhausted`, `fatal`, `decode`, ...).
pub const HEADER_REASON: &str = "Natask-Reason";
/// Dead letters: the last error, as text.
pub const HEADER_ERROR: &str = "Natask-Error";
/// Dead letters: how many times the task was delivered.
pub const HEADER_ATTEMPTS: &str = "Natask-Attempts";
/// Dead letters: when the task was parked, in milliseconds since the Unix epoch.
pub const HEADER_FAILED_AT: &str = "Natask-Failed-At";
/// On a dead letter whose body was cut to fit the server's `max_payload`:
/// the original body's size in bytes.
pub const HEADER_TRUNCATED: &str = "Natask-Truncated";
/// Payload encoding, `application/json` when present (format 2 leaves it
/// out; natask never reads it).
pub const HEADER_CONTENT_TYPE: &str = "Content-Type";
/// The only payload encoding of format versions 1 and 2.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The durable pull consumer every worker process of a queue shares.
pub const CONSUMER: &str = "workers";

/// The prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "natask";

/// Every JetStream name natask uses, derived from one prefix so that two
/// applications can share an account.
///
/// ```
/// use natask_core::wire::Names;
/// let n = Names::new("natask");
/// assert_eq!(n.queue_stream("emails"), "NATASK_Q_emails");
/// assert_eq!(n.task_subject("emails", "send_email"), "natask.q.emails.send_email");
/// assert_eq!(n.waiting_subject("emails", "send_email", "42"), "natask.q.emails.send_email.42");
/// assert_eq!(n.waiting_filter("emails", "42"), "natask.q.emails.*.42");
/// assert_eq!(n.queue_filter("emails"), "natask.q.emails.>");
/// assert_eq!(n.schedule_subject("emails", "send_email", "42"), "natask.s.emails.send_email.42");
/// assert_eq!(n.cron_subject("emails", "digest"), "natask.s.emails.digest.cron");
/// assert_eq!(n.dead_letter_stream(), "NATASK_DLQ");
/// assert_eq!(n.dead_letter_subject("emails", "send_email", "42"), "natask.dlq.emails.send_email.42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    stream_prefix: String,
}

impl Names {
    /// Names under `prefix`, which must pass [`crate::name::check`].
    pub fn new(prefix: &str) -> Self {
        Names {
            prefix: prefix.to_owned(),
            stream_prefix: prefix.to_ascii_uppercase(),
        }
    }

    /// The subject prefix, e.g. `natask`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The work-queue stream of `queue`.
    pub fn queue_stream(&self, queue: &str) -> String {
        format!("{}_Q_{queue}", self.stream_prefix)
    }

    /// The subjects of the work-queue stream of `queue` (also the consumer's filter).
    pub fn queue_filter(&self, queue: &str) -> String {
        format!("{}.q.{queue}.>", self.prefix)
    }

    /// The subject of `task` on `queue` without a task id: the target of
    /// cron and recurring schedules (whose ticks share it), and what
    /// format 1 producers publish to. The queue's consumer takes both.
    pub fn task_subject(&self, queue: &str, task: &str) -> String {
        format!("{}.q.{queue}.{task}", self.prefix)
    }

    /// The subject task `id` of `task` on `queue` is published to: one per
    /// task (format 2), so that a waiting task is found by its id.
    pub fn waiting_subject(&self, queue: &str, task: &str, id: &str) -> String {
        format!("{}.q.{queue}.{task}.{id}", self.prefix)
    }

    /// The subjects of waiting task `id` of `queue`, whatever its name.
    pub fn waiting_filter(&self, queue: &str, id: &str) -> String {
        format!("{}.q.{queue}.*.{id}", self.prefix)
    }

    /// The schedule subjects of `queue`'s delayed tasks; the queue's stream
    /// captures them too, but the consumer's filter does not.
    pub fn schedule_filter(&self, queue: &str) -> String {
        format!("{}.s.{queue}.>", self.prefix)
    }

    /// The schedule subject of delayed task `id`. One per task: the server
    /// keeps only the newest schedule of a subject.
    pub fn schedule_subject(&self, queue: &str, task: &str, id: &str) -> String {
        format!("{}.s.{queue}.{task}.{id}", self.prefix)
    }

    /// The schedule subject of cron task `task`: one per task, so publishing
    /// it again replaces the previous expression.
    pub fn cron_subject(&self, queue: &str, task: &str) -> String {
        format!("{}.s.{queue}.{task}.cron", self.prefix)
    }

    /// The subject of the schedule `key` of task `task`, made at run time
    /// (`Recurring::set`): one per key, so publishing it again replaces it.
    /// It has one token more than [`cron_subject`](Self::cron_subject), so
    /// [`cron_filter`](Self::cron_filter) never matches it.
    pub fn keyed_schedule_subject(&self, queue: &str, task: &str, key: &str) -> String {
        format!("{}.s.{queue}.{task}.cron.{key}", self.prefix)
    }

    /// The subjects of every run-time schedule of task `task`.
    pub fn keyed_schedule_filter(&self, queue: &str, task: &str) -> String {
        format!("{}.s.{queue}.{task}.cron.*", self.prefix)
    }

    /// The schedule subjects of every cron task of `queue` (a delayed task's
    /// schedule subject ends in its UUID, never in `cron`).
    pub fn cron_filter(&self, queue: &str) -> String {
        format!("{}.s.{queue}.*.cron", self.prefix)
    }

    /// The dead-letter stream, shared by all queues.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DLQ", self.stream_prefix)
    }

    /// The subjects of the dead-letter stream.
    pub fn dead_letter_filter(&self) -> String {
        format!("{}.dlq.>", self.prefix)
    }

    /// The subjects of the dead letters of `queue`.
    pub fn dead_letter_queue_filter(&self, queue: &str) -> String {
        format!("{}.dlq.{queue}.>", self.prefix)
    }

    /// The subject the dead letter of task `id` (`task` from `queue`) is stored under.
    pub fn dead_letter_subject(&self, queue: &str, task: &str, id: &str) -> String {
        format!("{}.dlq.{queue}.{task}.{id}", self.prefix)
    }

    /// The subjects of the dead letter of task `id`, whatever its queue and task.
    pub fn dead_letter_id_filter(&self, id: &str) -> String {
        format!("{}.dlq.*.*.{id}", self.prefix)
    }

    /// The stream of event `event`: `<PREFIX>_EV_<event>`.
    pub fn event_stream(&self, event: &str) -> String {
        format!("{}_EV_{event}", self.stream_prefix)
    }

    /// The subject events `event` are published to: `<prefix>.ev.<event>`.
    pub fn event_subject(&self, event: &str) -> String {
        format!("{}.ev.{event}", self.prefix)
    }

    /// The subjects of the stream of `event`: its published events, and
    /// the replays addressed to one subscription.
    pub fn event_filters(&self, event: &str) -> Vec<String> {
        vec![
            self.event_subject(event),
            format!("{}.ev.{event}.*", self.prefix),
        ]
    }

    /// The subject a dead letter of `event` is replayed to, so that only
    /// the subscription `subscription` (its consumer's name) reads it again:
    /// `<prefix>.ev.<event>.<subscription>`.
    pub fn event_replay_subject(&self, event: &str, subscription: &str) -> String {
        format!("{}.ev.{event}.{subscription}", self.prefix)
    }

    /// The durable consumer of handler `handler` of service `service`:
    /// `<service>__<handler>`. It stands where a queue name stands for a
    /// task (dead letters, logs and metrics).
    pub fn subscription(service: &str, handler: &str) -> String {
        format!("{service}__{handler}")
    }

    /// The key-value bucket counting deliveries that did not spend an
    /// attempt (snoozes, shutdown hand-backs), keyed by task id.
    pub fn handback_bucket(&self) -> String {
        format!("{}_HANDBACKS", self.stream_prefix)
    }

    /// The key-value bucket holding the locks of unique tasks.
    pub fn unique_bucket(&self) -> String {
        format!("{}_UNIQUE", self.stream_prefix)
    }

    /// The key-value bucket holding each task's state (key: the task id)
    /// and cancellation requests (key: `cancel.<id>`).
    pub fn task_bucket(&self) -> String {
        format!("{}_TASKS", self.stream_prefix)
    }

    /// The live catalog bucket: `<PREFIX>_CATALOG`.
    pub fn catalog_bucket(&self) -> String {
        format!("{}_CATALOG", self.stream_prefix)
    }

    /// The worker registry bucket: `<PREFIX>_WORKERS`.
    pub fn workers_bucket(&self) -> String {
        format!("{}_WORKERS", self.stream_prefix)
    }
}

impl Default for Names {
    fn default() -> Self {
        Names::new(DEFAULT_PREFIX)
    }
}

/// The identity of one enqueued task: a UUIDv7, so ids sort by enqueue time.
///
/// ```
/// use natask_core::TaskId;
/// let id = TaskId::new();
/// let back: TaskId = id.to_string().parse().unwrap();
/// assert_eq!(id, back);
/// assert!("not-an-id".parse::<TaskId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(uuid::Uuid);

impl TaskId {
    /// A fresh id.
    #[allow(clippy::new_without_default)] // a default id would look like a real one
    pub fn new() -> Self {
        TaskId(uuid::Uuid::now_v7())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl From<uuid::Uuid> for TaskId {
    /// Any UUID, as [`FromStr`] accepts any; natask's own are UUIDv7.
    fn from(uuid: uuid::Uuid) -> Self {
        TaskId(uuid)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// A string that is not a task id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTaskIdError {
    input: String,
}

impl fmt::Display for ParseTaskIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a task id; expected a UUID such as `0192c4d2-7f4e-7cc0-9d1e-4a6f1c2b3d4e`",
            self.input
        )
    }
}

impl std::error::Error for ParseTaskIdError {}

impl FromStr for TaskId {
    type Err = ParseTaskIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::try_parse(s)
            .map(TaskId)
            .map_err(|_| ParseTaskIdError {
                input: s.chars().take(64).collect(),
            })
    }
}

impl serde::Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert!(a < b);
        assert_eq!(a.to_string().len(), 36);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), a);
    }

    #[test]
    fn prefix_is_applied_everywhere() {
        let n = Names::new("app1");
        assert_eq!(n.queue_stream("q"), "APP1_Q_q");
        assert_eq!(n.dead_letter_stream(), "APP1_DLQ");
        assert_eq!(n.dead_letter_filter(), "app1.dlq.>");
        assert_eq!(n.dead_letter_queue_filter("q"), "app1.dlq.q.>");
        assert_eq!(n.dead_letter_id_filter("x"), "app1.dlq.*.*.x");
        assert_eq!(n.handback_bucket(), "APP1_HANDBACKS");
        assert_eq!(n.unique_bucket(), "APP1_UNIQUE");
        assert_eq!(n.keyed_schedule_subject("q", "t", "k"), "app1.s.q.t.cron.k");
        assert_eq!(n.keyed_schedule_filter("q", "t"), "app1.s.q.t.cron.*");
        assert_eq!(n.schedule_filter("q"), "app1.s.q.>");
        assert_eq!(n.schedule_subject("q", "t", "x"), "app1.s.q.t.x");
        assert_eq!(n.event_stream("order_placed"), "APP1_EV_order_placed");
        assert_eq!(n.event_subject("order_placed"), "app1.ev.order_placed");
        assert_eq!(n.event_filters("e"), ["app1.ev.e", "app1.ev.e.*"]);
        assert_eq!(
            n.event_replay_subject("e", &Names::subscription("billing", "charge")),
            "app1.ev.e.billing__charge"
        );
    }
}
