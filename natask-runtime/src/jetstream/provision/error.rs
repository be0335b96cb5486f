//! Why provisioning failed.

use natask_core::wire;

use crate::jetstream::permissions::PermissionViolation;
use crate::policy::InvalidPolicy;

/// A stream, consumer or bucket could not be created, looked up or updated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// JetStream refused or did not answer a request about the stream (or
    /// its consumer).
    #[error("{} could not be created or found", what(stream, consumer.as_deref()))]
    JetStream {
        /// The stream's name.
        stream: String,
        /// The consumer's name, if the request was about the consumer.
        consumer: Option<String>,
        /// What JetStream answered.
        #[source]
        source: async_nats::Error,
    },
    /// The server refused a request about the stream (or its consumer)
    /// for lack of permission, and so never answered it: the NATS user may
    /// not publish to the JetStream API subject (or subscribe to its reply
    /// inbox). Reported only on connections with a
    /// [`PermissionWatch`](crate::PermissionWatch) (see there).
    #[error(
        "{} could not be created or found: permission denied: the NATS user may not {violation} \
         (the server reported a permissions violation); grant it (docs/security.md lists what each \
         role needs), or have an admin create the stream and use Provisioning::NoCreate",
        what(stream, consumer.as_deref())
    )]
    PermissionDenied {
        /// The stream's name.
        stream: String,
        /// The consumer's name, if the request was about the consumer.
        consumer: Option<String>,
        /// What the server refused.
        violation: PermissionViolation,
    },
    /// The queue's policy is invalid.
    #[error(transparent)]
    InvalidPolicy(#[from] InvalidPolicy),
    /// The stream or consumer does not exist, and
    /// [`Provisioning::NoCreate`](crate::Provisioning::NoCreate) forbids
    /// creating it.
    #[error(
        "{} does not exist, and this client may not create it (Provisioning::NoCreate); \
         whoever manages the NATS account must create it, e.g. by running a natask producer or \
         worker once with the default Provisioning::Create",
        what(stream, consumer.as_deref())
    )]
    Missing {
        /// The stream's name.
        stream: String,
        /// The consumer's name, if the stream exists but the consumer does not.
        consumer: Option<String>,
    },
    /// [`Queue::drift`](crate::Queue::drift) was asked about a queue whose
    /// stream does not exist yet.
    #[error(
        "stream `{stream}` does not exist yet; it is created by the first enqueue or by a runtime \
         serving the queue"
    )]
    NotFound {
        /// The stream's name.
        stream: String,
    },
    /// The stream needs a feature the server does not have.
    #[error("stream `{stream}` needs {feature}, which nats-server {server_version} does not have; upgrade the server")]
    Unsupported {
        /// The stream's name.
        stream: String,
        /// The feature, e.g. `message schedules (nats-server 2.12)`.
        feature: &'static str,
        /// The version the server reports.
        server_version: String,
    },
    /// The queue refuses tasks when full
    /// ([`WhenFull::Refuse`](crate::WhenFull::Refuse) with
    /// [`QueuePolicy::max_tasks`](crate::QueuePolicy::max_tasks) or
    /// [`QueuePolicy::max_bytes`](crate::QueuePolicy::max_bytes)) and was
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
        /// The setting, as in [`Drift::field`](crate::Drift::field).
        field: &'static str,
        /// The value on the server.
        live: String,
        /// The value the policy asks for.
        wanted: String,
    },
}

/// What the feature of [`ProvisionError::Unsupported`] is called.
pub(crate) const MESSAGE_SCHEDULES: &str = "message schedules (nats-server 2.12)";
/// What the feature of [`ProvisionError::Unsupported`] is called.
pub(crate) const MESSAGE_TTL: &str = "per-message TTL (nats-server 2.11)";

fn what(stream: &str, consumer: Option<&str>) -> String {
    match consumer {
        Some(consumer) => format!("consumer `{consumer}` on stream `{stream}`"),
        None => format!("stream `{stream}`"),
    }
}

impl ProvisionError {
    pub(super) fn stream(stream: &str, source: impl Into<async_nats::Error>) -> ProvisionError {
        ProvisionError::JetStream {
            stream: stream.to_owned(),
            consumer: None,
            source: source.into(),
        }
    }

    pub(super) fn consumer(stream: &str, source: impl Into<async_nats::Error>) -> ProvisionError {
        ProvisionError::JetStream {
            stream: stream.to_owned(),
            consumer: Some(wire::CONSUMER.to_owned()),
            source: source.into(),
        }
    }
}
