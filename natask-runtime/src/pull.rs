//! Pull requests for one queue over one long-lived subscription.
//!
//! The worker asks the server for exactly as many tasks as it has free
//! handler slots, so no task ever waits in the worker's memory while its
//! ack wait runs out. The async-nats pull helpers either subscribe anew for
//! every request (`batch()`: a SUB, a PUB and an UNSUB per pull, which made
//! one handler at a time cost a millisecond per task) or keep a fixed batch
//! in flight whatever the handlers are doing (`stream()`: prefetch). This
//! keeps one inbox for the queue's whole life and counts what each pull
//! request still owes, from the tasks that arrive and the server's status
//! messages (`408` and `409` carry `Nats-Pending-Messages`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::BatchConfig;
use async_nats::jetstream::{self, consumer::PullConsumer};
use async_nats::{HeaderName, Statistics, StatusCode, Subject, Subscriber};
use futures_util::StreamExt;
use tokio::time::Instant;

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
    owed: usize,
    forget_at: Instant,
}

pub(crate) struct Puller {
    consumer: PullConsumer,
    context: jetstream::Context,
    inbox: Subject,
    subscription: Subscriber,
    /// Requests the server may still be serving, oldest first. The server
    /// serves and expires a consumer's requests in the order they came.
    requests: VecDeque<Request>,
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
        let inbox = Subject::from(nats.new_inbox());
        let subscription = nats.subscribe(inbox.clone()).await?;
        let max_payload = nats.server_info().max_payload;
        let statistics = nats.statistics();
        let connects = statistics.connects.load(Ordering::Relaxed);
        Ok(Puller {
            consumer,
            context,
            inbox,
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

    /// Replaces the consumer (after it was re-created) and forgets every
    /// request made to the old one.
    pub(crate) fn set_consumer(&mut self, consumer: PullConsumer) {
        self.consumer = consumer;
        self.forget();
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
        self.consumer
            .request_batch(batch, self.inbox.clone())
            .await
            .map_err(|e| e.to_string())?;
        self.requests.push_back(Request {
            owed: n,
            forget_at: Instant::now() + EXPIRES + GRACE,
        });
        self.owed += n;
        self.heard_at = Instant::now();
        Ok(())
    }

    /// Waits for the next task or status. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Pulled {
        let give_up_at = self
            .requests
            .front()
            .map(|r| r.forget_at.min(self.heard_at + 2 * HEARTBEAT));
        let message = match give_up_at {
            Some(at) => tokio::select! {
                message = self.subscription.next() => message,
                () = tokio::time::sleep_until(at) => {
                    if self.heard_at + 2 * HEARTBEAT <= at {
                        tracing::debug!("no heartbeat from the server; its pull requests are taken for lost");
                        self.forget();
                    } else {
                        self.end_oldest();
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
            Some(StatusCode::TIMEOUT | StatusCode::REQUEST_TERMINATED)
                if message
                    .headers
                    .as_ref()
                    .is_some_and(|h| h.get(PENDING_MESSAGES).is_some()) =>
            {
                // Expired, or out of bytes: the oldest request is over.
                self.end_oldest();
                Pulled::Ended
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
        self.owed = self.owed.saturating_sub(1);
        if let Some(oldest) = self.requests.front_mut() {
            oldest.owed = oldest.owed.saturating_sub(1);
            if oldest.owed == 0 {
                self.requests.pop_front();
            }
        }
    }

    fn end_oldest(&mut self) {
        if let Some(oldest) = self.requests.pop_front() {
            self.owed = self.owed.saturating_sub(oldest.owed);
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
