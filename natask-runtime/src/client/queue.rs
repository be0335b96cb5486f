//! A queue, as an operator sees it ([`Client::queue`](crate::Client::queue)):
//! its policy, what it holds, pausing and resuming it fleet-wide, and
//! bringing its stream and consumer in line with the policy.
//!
//! A pause is JetStream's consumer pause (nats-server 2.11): the queue's one
//! consumer, shared by every worker, stops handing out tasks, so all workers
//! stop at once without being told. Tasks already handed out run to the end
//! and are acknowledged as usual. Workers keep their pull requests open
//! meanwhile; the server holds them (with idle heartbeats) until they expire
//! and the worker renews them, so a paused worker neither spins nor warns.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{context, stream};
use futures_util::TryStreamExt;

use natask_core::name::{self, NameError};
use natask_core::wire;

use super::Client;
use crate::jetstream::error::{self, Code};
use crate::jetstream::permissions::PermissionViolation;
use crate::jetstream::provision::ProvisionError;
use crate::jetstream::server::{self, Feature};
use crate::policy::{Drift, QueuePolicy};

/// What an indefinite pause sends: 9999-12-31T00:00:00Z, late enough to
/// mean "until resumed" and still inside the range of both datetime
/// backends async-nats may be built with.
const FAR_FUTURE: Duration = Duration::from_secs(253_402_214_400);

/// One queue, as [`Client::queue`](crate::Client::queue) hands it out.
/// Cheap to clone.
///
/// ```no_run
/// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::{Duration, SystemTime};
///
/// let emails = client.queue("emails");
/// emails.pause_until(SystemTime::now() + Duration::from_secs(600)).await?;
/// let info = emails.info().await?;
/// println!("{} waiting, paused: {}", info.depth, info.is_paused());
/// emails.resume().await?;
/// for change in emails.update().await? {
///     println!("{change}"); // e.g. "max_in_flight: live 10000, wanted 50"
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    name: String,
}

/// What a queue holds and whether it is paused, as [`Queue::info`] reads
/// it from JetStream.
///
/// The counts are a snapshot from two requests (the queue's consumer and the
/// dead-letter stream), not a transaction: a task moving meanwhile may be
/// counted in two places or in none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The queue's name.
    pub queue: String,
    /// Tasks stored and not yet handed to any worker (the consumer's
    /// `num_pending`; before any worker created the consumer, every task in
    /// the stream). Tasks enqueued while the queue is paused add up here.
    pub depth: u64,
    /// Tasks handed to a worker and not yet finished: running, or waiting
    /// out the delay before their next attempt (the consumer's
    /// `num_ack_pending`).
    pub in_flight: u64,
    /// Dead letters of this queue in the dead-letter stream.
    pub dead_letters: u64,
    /// Pull requests that workers hold open for tasks (the consumer's
    /// `num_waiting`). A worker process holds one to four per queue while it
    /// has free handler slots and none while every slot is busy, so this is
    /// not a count of workers: 0 means no worker is waiting for tasks
    /// (none runs, or all are busy), more than 0 means at least one is.
    pub waiting_pulls: u64,
    /// When the pause ends, while the queue is paused; `None` otherwise (and
    /// always on a server older than 2.11). An indefinite pause reads as
    /// 9999-12-31.
    pub paused_until: Option<SystemTime>,
    /// When the oldest task the queue holds (waiting or in flight; delayed
    /// tasks not yet due are not counted) was stored; `None` when it holds
    /// none.
    pub oldest_task_at: Option<SystemTime>,
}

impl QueueInfo {
    /// Whether the queue is paused.
    pub fn is_paused(&self) -> bool {
        self.paused_until.is_some()
    }
}

/// Pausing, resuming or inspecting a queue failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue name breaks natask's naming rules.
    #[error("`{queue}` is not a valid queue name")]
    InvalidName {
        /// The name given.
        queue: String,
        /// Which rule it breaks.
        #[source]
        source: NameError,
    },
    /// The queue's stream does not exist.
    #[error(
        "queue `{queue}` has no stream yet: no task was enqueued to it and no worker served it; \
         check the name, or start a worker serving the queue"
    )]
    NoStream {
        /// The queue.
        queue: String,
    },
    /// The queue's stream exists but its consumer does not.
    #[error(
        "queue `{queue}` has no consumer yet: no worker has served it so far; \
         start a worker serving the queue (it creates the consumer), then pause it"
    )]
    NoConsumer {
        /// The queue.
        queue: String,
    },
    /// The server is older than 2.11 and cannot pause consumers.
    #[error(
        "pausing queue `{queue}` needs nats-server 2.11 or newer, but the server is {version}; \
         upgrade the server"
    )]
    Unsupported {
        /// The queue.
        queue: String,
        /// The version the server reports.
        version: String,
    },
    /// The queues' streams could not be listed ([`Client::queues`]).
    #[error("could not list the streams of the queues")]
    List {
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
    /// The server refused a request for lack of permission, and so never
    /// answered it (reported on connections with a
    /// [`PermissionWatch`](crate::PermissionWatch)).
    #[error(
        "could not {action} queue `{queue}`: permission denied: the NATS user may not {violation} \
         (the server reported a permissions violation); grant it (docs/security.md lists what \
         each role needs)"
    )]
    PermissionDenied {
        /// What was being done.
        action: &'static str,
        /// The queue.
        queue: String,
        /// What the server refused.
        violation: PermissionViolation,
    },
    /// JetStream refused or did not answer.
    #[error("could not {action} queue `{queue}`")]
    JetStream {
        /// What was being done.
        action: &'static str,
        /// The queue.
        queue: String,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

impl Queue {
    pub(crate) fn new(client: Client, name: &str) -> Queue {
        Queue {
            client,
            name: name.to_owned(),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's policy: the one registered with
    /// [`Client::with_queue`](crate::Client::with_queue), or the defaults.
    pub fn policy(&self) -> Arc<QueuePolicy> {
        self.client.provisioner().policy(&self.name)
    }

    /// Pauses the queue for every worker until [`resume`](Self::resume).
    ///
    /// Workers stop receiving the queue's tasks within milliseconds, whichever
    /// process they run in; tasks already running finish and are
    /// acknowledged as usual. Tasks may still be enqueued and wait. The
    /// pause is stored with the queue's consumer, so it survives worker and
    /// server restarts.
    ///
    /// Needs nats-server 2.11 or newer ([`QueueError::Unsupported`]
    /// otherwise) and a worker having served the queue once, which creates
    /// its consumer ([`QueueError::NoStream`], [`QueueError::NoConsumer`]).
    pub async fn pause(&self) -> Result<(), QueueError> {
        self.pause_until(UNIX_EPOCH + FAR_FUTURE).await
    }

    /// Pauses the queue for every worker until `until` (or
    /// [`resume`](Self::resume)); see [`pause`](Self::pause). A time in the
    /// past resumes the queue.
    pub async fn pause_until(&self, until: SystemTime) -> Result<(), QueueError> {
        let until = until.min(UNIX_EPOCH + FAR_FUTURE);
        self.set_pause(Some(until), "pause").await?;
        let queue = self.name.as_str();
        if until > SystemTime::now() {
            tracing::info!(queue, pause = %describe(until), "queue paused");
        } else {
            tracing::info!(queue, "queue resumed: the pause's end is past");
        }
        Ok(())
    }

    /// Resumes the queue for every worker; see [`pause`](Self::pause).
    /// Resuming a queue that is not paused does nothing.
    pub async fn resume(&self) -> Result<(), QueueError> {
        self.set_pause(None, "resume").await?;
        tracing::info!(queue = %self.name, "queue resumed");
        Ok(())
    }

    async fn set_pause(
        &self,
        until: Option<SystemTime>,
        action: &'static str,
    ) -> Result<(), QueueError> {
        self.checked()?;
        let version = self.client.nats().server_info().version;
        if !server::supports(&version, Feature::ConsumerPause) {
            return Err(QueueError::Unsupported {
                queue: self.name.clone(),
                version,
            });
        }
        let stream = self
            .client
            .jetstream()
            .get_stream_no_info(self.client.names().queue_stream(&self.name))
            .await
            .map_err(|e| self.failed(action, e))?;
        let answer = match until {
            Some(until) => {
                stream
                    .pause_consumer(wire::CONSUMER, async_nats::datetime::DateTime::from(until))
                    .await
            }
            None => stream.resume_consumer(wire::CONSUMER).await,
        };
        answer.map(drop).map_err(|e| match error::code(&e) {
            Some(Code::STREAM_NOT_FOUND) => QueueError::NoStream {
                queue: self.name.clone(),
            },
            Some(Code::CONSUMER_NOT_FOUND) => QueueError::NoConsumer {
                queue: self.name.clone(),
            },
            _ => self.failed(action, e),
        })
    }

    /// How many tasks the queue holds, runs and has dead-lettered, how many
    /// pull requests workers hold open, whether it is paused, and when its
    /// oldest task was stored.
    ///
    /// Four JetStream requests, the dead-letter count among them costing
    /// in proportion to the queue's dead letters (one subject each). Fails
    /// with [`QueueError::NoStream`] for a queue that was never used.
    pub async fn info(&self) -> Result<QueueInfo, QueueError> {
        self.checked()?;
        let action = "inspect";
        let stream = match self
            .client
            .jetstream()
            .get_stream(self.client.names().queue_stream(&self.name))
            .await
        {
            Ok(stream) => stream,
            Err(e) if error::is_stream_not_found(&e) => {
                return Err(QueueError::NoStream {
                    queue: self.name.clone(),
                })
            }
            Err(e) => return Err(self.failed(action, e)),
        };
        let mut info = QueueInfo {
            queue: self.name.clone(),
            depth: stream.cached_info().state.messages,
            in_flight: 0,
            dead_letters: 0,
            waiting_pulls: 0,
            paused_until: None,
            oldest_task_at: None,
        };
        match stream.consumer_info(wire::CONSUMER).await {
            Ok(consumer) => {
                info.depth = consumer.num_pending;
                info.in_flight = consumer.num_ack_pending as u64;
                info.waiting_pulls = consumer.num_waiting as u64;
                info.paused_until = consumer
                    .paused
                    .then_some(consumer.config.pause_until)
                    .flatten()
                    .map(SystemTime::from);
            }
            // No worker has served it yet: every stored task is waiting.
            Err(e) if e.kind() == context::ConsumerInfoErrorKind::NotFound => {}
            Err(e) => return Err(self.failed(action, e)),
        }
        info.oldest_task_at = match stream
            .get_first_raw_message_by_subject(self.client.names().queue_filter(&self.name), 1)
            .await
        {
            Ok(message) => Some(SystemTime::from(message.time)),
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(self.failed(action, e)),
        };
        info.dead_letters = self.count_dead_letters().await?;
        Ok(info)
    }

    async fn count_dead_letters(&self) -> Result<u64, QueueError> {
        let action = "count the dead letters of";
        let stream = match self
            .client
            .jetstream()
            .get_stream(self.client.names().dead_letter_stream())
            .await
        {
            Ok(stream) => stream,
            // No task of any queue was dead-lettered yet.
            Err(e) if error::is_stream_not_found(&e) => return Ok(0),
            Err(e) => return Err(self.failed(action, e)),
        };
        // Every dead letter has a subject of its own, so the per-subject
        // counts are one per letter; the server pages them.
        let counts = stream
            .info_with_subjects(self.client.names().dead_letter_queue_filter(&self.name))
            .await
            .map_err(|e| self.failed(action, e))?;
        counts
            .map_ok(|(_, n)| n as u64)
            .try_fold(0, |sum, n| async move { Ok(sum + n) })
            .await
            .map_err(|e| self.failed(action, e))
    }

    /// Where the live stream and consumer of the queue differ from its
    /// [policy](Self::policy); empty when they match. Read-only.
    ///
    /// The consumer counts only once it exists (a runtime serving the
    /// queue creates it), and its `ack_wait` only if the policy sets one
    /// (otherwise the runtime's [`ack_wait`](crate::RuntimeBuilder::ack_wait)
    /// applies, which this client does not know).
    pub async fn drift(&self) -> Result<Vec<Drift>, ProvisionError> {
        self.client.provisioner().queue_drift(&self.name).await
    }

    /// Updates the queue's stream and consumer to its
    /// [policy](Self::policy) and returns what was changed (empty if
    /// nothing differed). Provisioning alone never changes an existing
    /// stream or consumer; this does.
    ///
    /// A missing stream is created first (unless
    /// [`Provisioning::NoCreate`](crate::Provisioning::NoCreate)); a missing
    /// consumer is left to the runtime, which creates it from the policy.
    /// Settings the server cannot change on an existing stream (storage,
    /// retention) fail with [`ProvisionError::Immutable`] and nothing is
    /// changed; more replicas than the cluster has servers fail with the
    /// server's error.
    pub async fn update(&self) -> Result<Vec<Drift>, ProvisionError> {
        self.client.provisioner().update_queue(&self.name).await
    }

    fn checked(&self) -> Result<(), QueueError> {
        name::check(&self.name).map_err(|source| QueueError::InvalidName {
            queue: self.name.clone(),
            source,
        })
    }

    fn failed(&self, action: &'static str, e: impl Into<async_nats::Error>) -> QueueError {
        let source = e.into();
        let queue = self.name.clone();
        match self.client.provisioner().explain(&*source) {
            Some(violation) => QueueError::PermissionDenied {
                action,
                queue,
                violation,
            },
            None => QueueError::JetStream {
                action,
                queue,
                source,
            },
        }
    }
}

impl Client {
    /// The names of every queue with a stream under this client's prefix
    /// (streams named `<PREFIX>_Q_<queue>`), sorted. One JetStream request
    /// per 1024 streams in the account.
    ///
    /// ```no_run
    /// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// for queue in client.queues().await? {
    ///     println!("{queue}: {} waiting", client.queue(&queue).info().await?.depth);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn queues(&self) -> Result<Vec<String>, QueueError> {
        let start = self.names().queue_stream("");
        let mut queues: Vec<String> = self
            .jetstream()
            .stream_names()
            .try_filter_map(|stream| {
                let queue = stream
                    .strip_prefix(&start)
                    .filter(|queue| name::check(queue).is_ok())
                    .map(str::to_owned);
                async move { Ok(queue) }
            })
            .try_collect()
            .await
            .map_err(|e| QueueError::List { source: e.into() })?;
        queues.sort();
        Ok(queues)
    }
}

/// How long a pause ending at `until` lasts, for the logs.
pub(crate) fn describe(until: SystemTime) -> String {
    if until >= UNIX_EPOCH + FAR_FUTURE {
        return "until resumed".to_owned();
    }
    let secs = until
        .duration_since(SystemTime::now())
        .map_or(0, |d| d.as_secs());
    format!("for {secs} s more")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_indefinite_pause_reads_as_such() {
        assert_eq!(describe(UNIX_EPOCH + FAR_FUTURE), "until resumed");
        let soon = SystemTime::now() + Duration::from_secs(90);
        let said = describe(soon);
        assert!(said == "for 89 s more" || said == "for 90 s more", "{said}");
    }
}
