//! Pull requests for one queue over one long-lived subscription.
//!
//! The worker asks the server for exactly as many tasks as it has free
//! handler slots, so no task ever waits in the worker's memory while its
//! ack wait runs out. The async-nats pull helpers either subscribe anew for
//! every request (`batch()`: a SUB, a PUB and an UNSUB per pull, which made
//! one handler at a time cost a millisecond per task) or keep a fixed batch
//! in flight whatever the handlers are doing (`stream()`: prefetch). This
//! keeps one wildcard inbox subscription for the queue's whole life, gives
//! every pull request its own reply subject below it, and counts the tasks
//! still owed over all requests together: each task that arrives is one
//! fewer, and a request that ends (`408` expired, `409` out of bytes) says
//! in `Nats-Pending-Messages` how many it leaves unserved. (Per request the
//! count cannot be kept: the server serves its waiting requests round
//! robin, and a task does not say which request it answers.)

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::BatchConfig;
use async_nats::jetstream::{self, consumer::PullConsumer};
use async_nats::{HeaderName, Statistics, StatusCode, Subject, Subscriber};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::publish;

/// How long the server keeps one pull request waiting for tasks.
pub(crate) const EXPIRES: Duration = Duration::from_secs(5);
/// How long past its expiry a request still counts, in case the server's
/// `408` was lost.
const GRACE: Duration = Duration::from_secs(2);
/// While a request waits, the server says so this often; two missed in a
/// row and every request is taken for lost (e.g. a restarted server).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Pull requests outstanding at once; bounds the bytes in flight together
/// with each request's `max_bytes`.
pub(crate) const MAX_REQUESTS: usize = 4;
/// The bytes one request may bring at least (more when the server's
/// `max_payload` is larger, so the biggest task always fits).
const MIN_REQUEST_BYTES: usize = 8 << 20;

const PENDING_MESSAGES: HeaderName = HeaderName::from_static("Nats-Pending-Messages");

/// What one wait on the subscription brought.
// Nearly every value is a task, moved on into its handler; boxing it would
// add an allocation per task to save stack space in the rare other cases.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Pulled {
    /// A task.
    Task(jetstream::Message),
    /// A pull request ended (expired, or its byte budget ran out) or was
    /// forgotten; what it still owed is no longer counted.
    Ended,
    /// The server refused or ended pulling for a reason worth a pause.
    Failed(String),
}

struct Request {
    /// The last token of its reply subject.
    seq: u64,
    forget_at: Instant,
}

pub(crate) struct Puller {
    consumer: PullConsumer,
    context: jetstream::Context,
    /// `<inbox>.` : each request replies to `<inbox>.<seq>`.
    inbox: String,
    seq: u64,
    subscription: Subscriber,
    /// Requests the server may still be serving, oldest first (they expire
    /// in that order). A request served in full leaves no trace; it is
    /// dropped when nothing is owed any more, or once it would have expired.
    requests: VecDeque<Request>,
    /// Tasks asked for and not yet arrived, over all requests.
    owed: usize,
    max_bytes: usize,
    /// When the server last sent anything, or a request was made.
    heard_at: Instant,
    statistics: Arc<Statistics>,
    connects: u64,
}

impl Puller {
    pub(crate) async fn new(
        nats: &async_nats::Client,
        context: jetstream::Context,
        consumer: PullConsumer,
    ) -> Result<Puller, async_nats::SubscribeError> {
        let inbox = format!("{}.", nats.new_inbox());
        let subscription = nats.subscribe(format!("{inbox}*")).await?;
        let max_payload = nats.server_info().max_payload;
        let statistics = nats.statistics();
        let connects = statistics.connects.load(Ordering::Relaxed);
        Ok(Puller {
            consumer,
            context,
            inbox,
            seq: 0,
            subscription,
            requests: VecDeque::new(),
            owed: 0,
            max_bytes: MIN_REQUEST_BYTES.max(max_payload.saturating_mul(2)),
            heard_at: Instant::now(),
            statistics,
            connects,
        })
    }

    /// Whether the connection was re-established since the last call; the
    /// server has then forgotten every request, and so does this.
    pub(crate) fn reconnected(&mut self) -> bool {
        let connects = self.statistics.connects.load(Ordering::Relaxed);
        if connects == self.connects {
            return false;
        }
        self.connects = connects;
        self.forget();
        true
    }

    /// Tasks asked for and not yet arrived.
    pub(crate) fn owed(&self) -> usize {
        self.owed
    }

    /// Pull requests still counted.
    pub(crate) fn requests(&self) -> usize {
        self.requests.len()
    }

    /// Replaces the consumer with the one a check of the queue found; one
    /// created anew (the old was deleted) knows none of the requests made
    /// to the old one, and neither does this then.
    pub(crate) fn set_consumer(&mut self, consumer: PullConsumer) {
        let created = consumer.cached_info().created;
        let recreated = created != self.consumer.cached_info().created;
        self.consumer = consumer;
        if recreated {
            self.forget();
        }
    }

    /// Forgets every request: after a reconnect the server has too.
    pub(crate) fn forget(&mut self) {
        self.requests.clear();
        self.owed = 0;
    }

    /// Asks the server for up to `n` more tasks.
    pub(crate) async fn request(&mut self, n: usize) -> Result<(), String> {
        let batch = BatchConfig {
            batch: n,
            expires: Some(EXPIRES),
            max_bytes: self.max_bytes,
            idle_heartbeat: HEARTBEAT,
            ..Default::default()
        };
        self.seq += 1;
        let reply = Subject::from(format!("{}{}", self.inbox, self.seq));
        self.consumer
            .request_batch(batch, reply)
            .await
            .map_err(|e| e.to_string())?;
        self.requests.push_back(Request {
            seq: self.seq,
            forget_at: Instant::now() + EXPIRES + GRACE,
        });
        self.owed += n;
        self.heard_at = Instant::now();
        Ok(())
    }

    /// Waits for the next task or status. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Pulled {
        // While anything is owed some request waits at the server, which
        // then sends a heartbeat every second.
        let silent_at = (self.owed > 0).then(|| self.heard_at + 2 * HEARTBEAT);
        let forget_at = self.requests.front().map(|r| r.forget_at);
        let give_up_at = match (silent_at, forget_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let message = match give_up_at {
            Some(at) => tokio::select! {
                message = self.subscription.next() => message,
                () = tokio::time::sleep_until(at) => {
                    if silent_at.is_some_and(|silent| silent <= at) {
                        tracing::debug!("no heartbeat from the server; its pull requests are taken for lost");
                        self.forget();
                    } else {
                        // Served in full long ago, or its end was lost; the
                        // heartbeat check above covers what it may still owe.
                        self.requests.pop_front();
                    }
                    return Pulled::Ended;
                }
            },
            None => self.subscription.next().await,
        };
        let Some(message) = message else {
            return Pulled::Failed("the pull subscription was closed".to_owned());
        };
        self.heard_at = Instant::now();
        match message.status {
            None | Some(StatusCode::OK) => {
                self.arrived();
                Pulled::Task(jetstream::Message {
                    message,
                    context: self.context.clone(),
                })
            }
            Some(StatusCode::IDLE_HEARTBEAT) => Pulled::Ended,
            Some(StatusCode::TIMEOUT | StatusCode::REQUEST_TERMINATED) => {
                match message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(PENDING_MESSAGES))
                {
                    // Expired, or out of bytes: that request is over.
                    Some(unserved) => {
                        let unserved = unserved.as_str().parse().unwrap_or(0);
                        self.ended(request_seq(&message.subject), unserved);
                        Pulled::Ended
                    }
                    None => {
                        self.forget();
                        Pulled::Failed(format!(
                            "409 {}",
                            message.description.as_deref().unwrap_or("")
                        ))
                    }
                }
            }
            Some(status) => {
                self.forget();
                Pulled::Failed(format!(
                    "{status} {}",
                    message.description.as_deref().unwrap_or("")
                ))
            }
        }
    }

    fn arrived(&mut self) {
        // A task for a request no longer counted (forgotten, then served
        // after all) finds nothing owed; the worker hands it back if it has
        // no free slot.
        self.owed = self.owed.saturating_sub(1);
        if self.owed == 0 {
            self.requests.clear();
        }
    }

    /// Request `seq` ended with `unserved` tasks it will not bring.
    fn ended(&mut self, seq: Option<u64>, unserved: usize) {
        self.owed = self.owed.saturating_sub(unserved);
        if let Some(at) = seq.and_then(|seq| self.requests.iter().position(|r| r.seq == seq)) {
            self.requests.remove(at);
        }
        if self.owed == 0 {
            self.requests.clear();
        }
    }

    /// Unsubscribes (the server then drops the requests) and gives back
    /// what was already on its way within `drain`.
    pub(crate) async fn close(mut self, drain: Duration) -> Vec<jetstream::Message> {
        let _ = self.subscription.unsubscribe().await;
        let mut late = Vec::new();
        let _ = tokio::time::timeout(drain, async {
            while let Some(message) = self.subscription.next().await {
                if matches!(message.status, None | Some(StatusCode::OK)) {
                    late.push(jetstream::Message {
                        message,
                        context: self.context.clone(),
                    });
                }
            }
        })
        .await;
        late
    }
}

/// Sleeps before the next try after `failures` failures in a row, a
/// little longer each time but at most 400 ms, as a publish's resend
/// ([`publish::pause`]): a leader election answers pulls with `503` until
/// the new leader is in place, and the next pull must find it within a
/// second. False if stopped meanwhile.
pub(crate) async fn backoff(stop: &tokio_util::sync::CancellationToken, failures: u32) -> bool {
    let delay = publish::pause(failures.saturating_sub(1));
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}

/// The request a message answers, from the last token of its subject.
fn request_seq(subject: &Subject) -> Option<u64> {
    subject.rsplit('.').next().and_then(|seq| seq.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_read_from_the_reply_subject() {
        assert_eq!(request_seq(&Subject::from("_INBOX.abc.17")), Some(17));
        assert_eq!(request_seq(&Subject::from("_INBOX.abc.x")), None);
    }
}
