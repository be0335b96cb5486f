//! Operating a queue: pausing and resuming it fleet-wide, and reading its counts.
//!
//! A pause is JetStream's consumer pause (nats-server 2.11): the queue's one
//! consumer, shared by every worker, stops handing out tasks, so all workers
//! stop at once without being told. Tasks already handed out run to the end
//! and are acknowledged as usual. Workers keep their pull requests open
//! meanwhile; the server holds them (with idle heartbeats) until they expire
//! and the worker renews them, so a paused worker neither spins nor warns.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, context, stream};
use futures_util::{StreamExt, TryStreamExt};

use natask_core::name::{self, NameError};
use natask_core::wire;

use crate::client::Client;

/// The first nats-server release with consumer pause.
const PAUSE_SINCE: (u64, u64) = (2, 11);

/// What an indefinite pause sends: 9999-12-31T00:00:00Z, late enough to
/// mean "until resumed" and still inside the range of both datetime
/// backends async-nats may be built with.
const FAR_FUTURE: Duration = Duration::from_secs(253_402_214_400);

/// What a queue holds and whether it is paused, as [`Client::queue_info`]
/// reads it from JetStream.
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
    /// NATS or JetStream failed.
    #[error("could not {action} queue `{queue}`")]
    Nats {
        /// What was being done.
        action: &'static str,
        /// The queue.
        queue: String,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

impl Client {
    /// Pauses `queue` for every worker, until `until` or, with `None`, until
    /// [`resume_queue`](Client::resume_queue).
    ///
    /// Workers stop receiving the queue's tasks within milliseconds, whichever
    /// process they run in; tasks already running finish and are
    /// acknowledged as usual. Tasks may still be enqueued and wait. A time in
    /// the past resumes the queue. The pause is stored with the queue's
    /// consumer, so it survives worker and server restarts.
    ///
    /// Needs nats-server 2.11 or newer ([`QueueError::Unsupported`]
    /// otherwise) and a worker having served the queue once, which creates
    /// its consumer ([`QueueError::NoStream`], [`QueueError::NoConsumer`]).
    ///
    /// ```no_run
    /// # async fn demo(client: natask_runtime::Client) -> Result<(), natask_runtime::QueueError> {
    /// use std::time::{Duration, SystemTime};
    ///
    /// client.pause_queue("emails", Some(SystemTime::now() + Duration::from_secs(600))).await?;
    /// client.pause_queue("emails", None).await?; // until resumed
    /// client.resume_queue("emails").await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause_queue(
        &self,
        queue: &str,
        until: Option<SystemTime>,
    ) -> Result<(), QueueError> {
        let far_future = UNIX_EPOCH + FAR_FUTURE;
        let until = until.map_or(far_future, |t| t.min(far_future));
        self.set_pause(queue, Some(until), "pause").await?;
        if until > SystemTime::now() {
            tracing::info!(queue, pause = %describe(until), "queue paused");
        } else {
            tracing::info!(queue, "queue resumed: the pause's end is past");
        }
        Ok(())
    }

    /// Resumes `queue` for every worker; see [`pause_queue`](Client::pause_queue).
    ///
    /// Resuming a queue that is not paused does nothing.
    pub async fn resume_queue(&self, queue: &str) -> Result<(), QueueError> {
        self.set_pause(queue, None, "resume").await?;
        tracing::info!(queue, "queue resumed");
        Ok(())
    }

    async fn set_pause(
        &self,
        queue: &str,
        until: Option<SystemTime>,
        action: &'static str,
    ) -> Result<(), QueueError> {
        checked(queue)?;
        let version = &self.nats().server_info().version;
        if !supports_pause(version) {
            return Err(QueueError::Unsupported {
                queue: queue.to_owned(),
                version: version.clone(),
            });
        }
        let stream = self
            .jetstream()
            .get_stream_no_info(self.names().queue_stream(queue))
            .await
            .map_err(nats_err(action, queue))?;
        let answer = match until {
            Some(until) => {
                stream
                    .pause_consumer(wire::CONSUMER, async_nats::datetime::DateTime::from(until))
                    .await
            }
            None => stream.resume_consumer(wire::CONSUMER).await,
        };
        match answer {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.kind() {
                stream::ConsumerErrorKind::JetStream(js) => match js.error_code() {
                    jetstream::ErrorCode::STREAM_NOT_FOUND => QueueError::NoStream {
                        queue: queue.to_owned(),
                    },
                    jetstream::ErrorCode::CONSUMER_NOT_FOUND => QueueError::NoConsumer {
                        queue: queue.to_owned(),
                    },
                    _ => nats_err(action, queue)(e),
                },
                _ => nats_err(action, queue)(e),
            }),
        }
    }

    /// How many tasks `queue` holds, runs and has dead-lettered, how many
    /// pull requests workers hold open, and whether it is paused.
    ///
    /// Three JetStream requests, the dead-letter count among them costing
    /// in proportion to the queue's dead letters (one subject each). Fails
    /// with [`QueueError::NoStream`] for a queue that was never used.
    ///
    /// ```no_run
    /// # async fn demo(client: natask_runtime::Client) -> Result<(), natask_runtime::QueueError> {
    /// let info = client.queue_info("emails").await?;
    /// println!(
    ///     "{} waiting, {} running, {} dead, paused: {:?}",
    ///     info.depth, info.in_flight, info.dead_letters, info.paused_until
    /// );
    /// # Ok(()) }
    /// ```
    pub async fn queue_info(&self, queue: &str) -> Result<QueueInfo, QueueError> {
        checked(queue)?;
        let action = "inspect";
        let stream = match self
            .jetstream()
            .get_stream(self.names().queue_stream(queue))
            .await
        {
            Ok(stream) => stream,
            Err(e) if is_stream_not_found(&e) => {
                return Err(QueueError::NoStream {
                    queue: queue.to_owned(),
                })
            }
            Err(e) => return Err(nats_err(action, queue)(e)),
        };
        let stored = stream.cached_info().state.messages;
        let mut info = match stream.consumer_info(wire::CONSUMER).await {
            Ok(consumer) => QueueInfo {
                queue: queue.to_owned(),
                depth: consumer.num_pending,
                in_flight: consumer.num_ack_pending as u64,
                dead_letters: 0,
                waiting_pulls: consumer.num_waiting as u64,
                paused_until: consumer
                    .paused
                    .then_some(consumer.config.pause_until)
                    .flatten()
                    .map(SystemTime::from),
            },
            Err(e) if e.kind() == context::ConsumerInfoErrorKind::NotFound => QueueInfo {
                queue: queue.to_owned(),
                depth: stored,
                in_flight: 0,
                dead_letters: 0,
                waiting_pulls: 0,
                paused_until: None,
            },
            Err(e) => return Err(nats_err(action, queue)(e)),
        };
        info.dead_letters = self.count_dead_letters(queue).await?;
        Ok(info)
    }

    async fn count_dead_letters(&self, queue: &str) -> Result<u64, QueueError> {
        let action = "count the dead letters of";
        let stream = match self
            .jetstream()
            .get_stream(self.names().dead_letter_stream())
            .await
        {
            Ok(stream) => stream,
            // No task of any queue was dead-lettered yet.
            Err(e) if is_stream_not_found(&e) => return Ok(0),
            Err(e) => return Err(nats_err(action, queue)(e)),
        };
        // Every dead letter has a subject of its own, so the per-subject
        // counts are one per letter; the server pages them.
        stream
            .info_with_subjects(self.names().dead_letter_queue_filter(queue))
            .await
            .map_err(nats_err(action, queue))?
            .map_ok(|(_, n)| n as u64)
            .try_fold(0, |sum, n| async move { Ok(sum + n) })
            .await
            .map_err(nats_err(action, queue))
    }
}

fn checked(queue: &str) -> Result<(), QueueError> {
    name::check(queue).map_err(|source| QueueError::InvalidName {
        queue: queue.to_owned(),
        source,
    })
}

fn nats_err<E>(action: &'static str, queue: &str) -> impl FnOnce(E) -> QueueError
where
    E: Into<async_nats::Error>,
{
    let queue = queue.to_owned();
    move |e| QueueError::Nats {
        action,
        queue,
        source: e.into(),
    }
}

fn is_stream_not_found(e: &context::GetStreamError) -> bool {
    matches!(e.kind(), context::GetStreamErrorKind::JetStream(js)
        if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// Whether a server reporting `version` ("2.11.0", "2.12.0-beta.1") can
/// pause consumers. An unreadable version is given the benefit of the doubt.
fn supports_pause(version: &str) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= PAUSE_SINCE,
        _ => true,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pausing_needs_nats_server_2_11() {
        assert!(!supports_pause("2.10.24"));
        assert!(!supports_pause("1.99.0"));
        assert!(supports_pause("2.11.0"));
        assert!(supports_pause("2.12.0-beta.1"));
        assert!(supports_pause("3.0.0"));
        assert!(supports_pause(""), "unknown before the first connection");
    }

    #[test]
    fn an_indefinite_pause_reads_as_such() {
        assert_eq!(describe(UNIX_EPOCH + FAR_FUTURE), "until resumed");
        let soon = SystemTime::now() + Duration::from_secs(90);
        let said = describe(soon);
        assert!(said == "for 89 s more" || said == "for 90 s more", "{said}");
    }
}
