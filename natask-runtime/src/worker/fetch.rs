//! One queue's worker loop: it asks for exactly as many tasks as there are
//! free handler slots, starts an attempt for each as soon as it arrives,
//! and rides out NATS outages, leader elections and re-created streams.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use natask_core::TaskEntry;

use super::attempt::{self, Lookup};
use super::{message, pauses, Shared};
use crate::client::Client;
use crate::jetstream::assets::ConsumerSettings;
use crate::jetstream::pull::{self, Pulled, Puller};

/// How long a stopping worker waits for tasks already sent to it.
const STOP_DRAIN: Duration = Duration::from_millis(100);
/// While pulling fails, every this many failures (about 8 s) log a
/// warning again; the rest are debug lines.
const WARN_EVERY: u32 = 20;

/// Prefetching stops while the queue's tasks take this long on average.
const SHORT_TASK: Duration = Duration::from_millis(50);
/// About how long a task pulled ahead waits in a worker before it starts:
/// a worker pulls ahead only as many tasks as its handlers finish in this
/// time, at the queue's average task time here (and at most the queue's
/// `prefetch`).
const AHEAD_FOR: Duration = Duration::from_millis(10);
/// Tasks a worker finishes on a queue before it may prefetch: one quick
/// task (a parked one, say) says little about the next.
const PREFETCH_AFTER: u64 = 16;

/// A handler slot; freeing it wakes the fetch loop to ask for more tasks,
/// and adds how long it was held to the queue's average.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    /// The queue's count of handlers running here (the worker registry's
    /// "in flight"), and of those finished.
    running: Arc<AtomicUsize>,
    finished: Arc<AtomicU64>,
    freed: Arc<Notify>,
    /// When it was taken, and a number that tells it from other slots.
    taken: (Instant, u64),
    held: Arc<HeldFor>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.finished.fetch_add(1, Ordering::Relaxed);
        self.held.freed(self.taken);
        // The permit goes back before the loop wakes: fields are dropped
        // after this function, and a loop woken first would find no free
        // slot and sleep until something else woke it.
        drop(self.permit.take());
        self.freed.notify_one();
    }
}

/// How long this worker's slots of one queue are held: a moving average
/// of the freed ones, in microseconds (`u64::MAX` until the first is
/// freed), and since when each taken one is held.
#[derive(Default)]
struct HeldFor {
    average: AtomicU64,
    freed: AtomicU64,
    taken: Mutex<BTreeSet<(Instant, u64)>>,
    next: AtomicU64,
}

impl HeldFor {
    fn new() -> HeldFor {
        HeldFor {
            average: AtomicU64::new(u64::MAX),
            ..HeldFor::default()
        }
    }

    /// A slot is taken now; its key for [`freed`](Self::freed).
    fn taken(&self) -> (Instant, u64) {
        let key = (Instant::now(), self.next.fetch_add(1, Ordering::Relaxed));
        self.taken_slots().insert(key);
        key
    }

    fn freed(&self, key: (Instant, u64)) {
        self.taken_slots().remove(&key);
        self.freed.fetch_add(1, Ordering::Relaxed);
        let sample = u64::try_from(key.0.elapsed().as_micros()).unwrap_or(u64::MAX / 2);
        let before = self.average.load(Ordering::Relaxed);
        let after = match before {
            u64::MAX => sample,
            _ => before - before / 8 + sample / 8,
        };
        // A lost update among racing slots only delays the average.
        self.average.store(after, Ordering::Relaxed);
    }

    /// How many tasks to keep pulled ahead of `handlers` handlers: none
    /// unless the tasks are [short](Self::short), else as many as the
    /// handlers finish in [`AHEAD_FOR`] at the average task time, from 1
    /// to `max`. Pulls then carry more tasks each, the fewer requests the
    /// server serves the shorter the tasks are.
    fn ahead(&self, max: usize, handlers: usize) -> usize {
        if max == 0 || !self.short() {
            return 0;
        }
        let average = self.average.load(Ordering::Relaxed).max(1);
        let per_handler = AHEAD_FOR.as_micros() as u64 / average;
        let ahead = usize::try_from(per_handler)
            .unwrap_or(usize::MAX)
            .saturating_mul(handlers);
        ahead.clamp(1, max)
    }

    fn taken_slots(&self) -> std::sync::MutexGuard<'_, BTreeSet<(Instant, u64)>> {
        self.taken.lock().expect("slot set poisoned")
    }

    /// Whether the queue's tasks are known to be short: enough have
    /// finished, they were short on average, and none of those still
    /// running has run long.
    fn short(&self) -> bool {
        self.freed.load(Ordering::Relaxed) >= PREFETCH_AFTER
            && self.average.load(Ordering::Relaxed) < SHORT_TASK.as_micros() as u64
            && self
                .taken_slots()
                .first()
                .is_none_or(|(since, _)| since.elapsed() < SHORT_TASK)
    }
}

/// A task pulled ahead, waiting for a free slot under its kept lease.
pub(super) struct Ahead {
    pub(super) msg: jetstream::Message,
    /// Since when its lease is known to hold.
    pub(super) leased: Instant,
    /// Its task's kept state, read while it waits.
    pub(super) lookup: Lookup,
}

/// Where a worker loop's messages come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// A queue's shared consumer.
    Queue,
    /// A service's subscription to an event: its durable consumer on the
    /// event's stream. The loop's `queue` is the consumer's name.
    Subscription(&'static natask_core::SubscriberEntry),
}

pub(crate) struct QueueWorker {
    /// The queue, or a subscription's consumer name.
    pub(crate) queue: &'static str,
    pub(crate) source: Source,
    pub(crate) consumer: PullConsumer,
    pub(crate) handlers: HashMap<&'static str, TaskEntry>,
    pub(crate) concurrency: usize,
    pub(crate) settings: ConsumerSettings,
    /// Retries for tasks that do not set their own: the queue policy's, else
    /// the runtime's.
    pub(crate) default_retries: u32,
    /// Whether task states are recorded ([`QueuePolicy::tracking`](crate::QueuePolicy::tracking)).
    pub(crate) tracking: bool,
    /// Tasks not started this long after they became due expire.
    pub(crate) validity: Option<Duration>,
    /// Whether the queue's consumer has replicas, so that its leader can
    /// change and acks are confirmed (`attempt::settle`).
    pub(crate) replicated: bool,
    /// Tasks pulled ahead of the free slots while tasks are short
    /// ([`QueuePolicy::prefetch`](crate::QueuePolicy::prefetch)).
    pub(crate) prefetch: usize,
    /// Handlers running now.
    pub(crate) running: Arc<AtomicUsize>,
    /// Handlers finished since the runtime was built.
    pub(crate) finished: Arc<AtomicU64>,
}

/// What the loop of one queue keeps between tasks.
struct Fetch {
    puller: Puller,
    slots: Arc<Semaphore>,
    freed: Arc<Notify>,
    /// Failed requests in a row.
    failures: u32,
    /// Since when pulling fails.
    failing_since: Option<Instant>,
    /// A check of the queue's stream and consumer running beside the pulls
    /// ([`QueueWorker::check_queue`]); the consumer it found.
    check: Option<JoinHandle<Option<PullConsumer>>>,
    /// Below this many missing tasks a new pull waits for more free slots,
    /// unless nothing is asked for at all; at one handler it is one.
    refill_at: usize,
    /// Tasks pulled ahead, oldest first.
    ahead: VecDeque<Ahead>,
    held: Arc<HeldFor>,
}

/// What one turn of the loop brought.
// Nearly every value is a task, moved on into its attempt; boxing it would
// add an allocation per task to save stack space in the rare other cases.
#[allow(clippy::large_enum_variant)]
enum Turn {
    Task(jetstream::Message),
    Again,
    Stop,
}

impl QueueWorker {
    /// Asks for exactly as many tasks as there are free handler slots, starts
    /// each as soon as it arrives, and on `stop` waits for the handlers.
    pub(crate) async fn run(
        self: Arc<Self>,
        shared: Arc<Shared>,
        stop: CancellationToken,
        hand_back: CancellationToken,
    ) {
        let Some(puller) = self.subscribe(&shared.client, &stop).await else {
            return;
        };
        // Subscribed before the first pull request, so that a pause seen
        // by the server after a worker asked for tasks is always logged.
        let pauses = pauses::follow_pauses(&shared.client, self.queue, self.consumer.cached_info())
            .await
            .map(|advisories| {
                tokio::spawn(pauses::log_pauses(self.queue, advisories, stop.clone()))
            });
        let mut fetch = Fetch {
            puller,
            slots: Arc::new(Semaphore::new(self.concurrency)),
            freed: Arc::new(Notify::new()),
            failures: 0,
            failing_since: None,
            check: None,
            refill_at: (self.concurrency / 4).max(1),
            ahead: VecDeque::with_capacity(self.prefetch),
            held: Arc::new(HeldFor::new()),
        };
        while !stop.is_cancelled() {
            self.start_ahead(&shared, &mut fetch, &hand_back).await;
            match self.turn(&shared.client, &stop, &mut fetch).await {
                Turn::Task(msg) => self.start(&shared, &mut fetch, msg, &hand_back).await,
                Turn::Again => {}
                Turn::Stop => break,
            }
        }
        // Tasks already on the wire or pulled ahead would wait out the ack
        // wait; hand them straight back.
        let ahead = fetch.ahead.drain(..).map(|a| a.msg);
        for msg in ahead.chain(fetch.puller.close(STOP_DRAIN).await) {
            hand_back_unstarted(&shared, &msg).await;
        }
        if let Some(pauses) = pauses {
            pauses.abort();
        }
        if let Some(check) = fetch.check.take() {
            check.abort();
        }
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = fetch.slots.acquire_many(all).await;
    }

    /// The subscription pulled tasks arrive on, retried until it is made;
    /// `None` if stopped first.
    async fn subscribe(&self, client: &Client, stop: &CancellationToken) -> Option<Puller> {
        let mut failures: u32 = 0;
        loop {
            let subscribed = Puller::new(
                client.nats(),
                client.jetstream().clone(),
                self.consumer.clone(),
            )
            .await;
            match subscribed {
                Ok(puller) => return Some(puller),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(queue = self.queue, error = %e, failures, "cannot subscribe for tasks; retrying");
                    if !pull::backoff(stop, failures).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Asks for as many tasks as there are free slots, and waits for the
    /// next one (or for a freed slot, an ended request or `stop`).
    async fn turn(&self, client: &Client, stop: &CancellationToken, fetch: &mut Fetch) -> Turn {
        if !self.connected(client, stop, fetch).await {
            return Turn::Stop;
        }
        fetch.checked().await;
        let ahead = fetch.held.ahead(self.prefetch, self.concurrency);
        let puller = &mut fetch.puller;
        let want = (fetch.slots.available_permits() + ahead)
            .saturating_sub(puller.owed() + fetch.ahead.len());
        if want > 0
            && (puller.owed() == 0 || want >= fetch.refill_at)
            && puller.requests() < pull::MAX_REQUESTS
        {
            if let Err(e) = puller.request(want).await {
                return self
                    .failed(client, stop, fetch, "cannot fetch tasks", e)
                    .await;
            }
        }
        let renewal = fetch.renewal_due(self.settings.ack_wait);
        let renewing = !fetch.ahead.is_empty();
        let msg = tokio::select! {
            pulled = fetch.puller.next() => match pulled {
                Pulled::Task(msg) => msg,
                Pulled::Ended => return Turn::Again,
                Pulled::Failed(e) => {
                    return self.failed(client, stop, fetch, "pulling tasks failed", e).await
                }
            },
            () = fetch.freed.notified() => return Turn::Again,
            () = tokio::time::sleep_until(renewal), if renewing => {
                fetch.renew_ahead(self.settings.ack_wait).await;
                return Turn::Again;
            }
            () = stop.cancelled() => return Turn::Stop,
        };
        if fetch.failures > 0 {
            let failing = fetch.failing_since.take().map(|since| since.elapsed());
            tracing::info!(queue = self.queue, ?failing, "fetching tasks again");
            fetch.failures = 0;
        }
        Turn::Task(msg)
    }

    /// After a failed request: logs it, checks the queue beside the pulls
    /// and waits a little before the next pull (at most 400 ms: a
    /// leader election ends with the next pull served within a second).
    async fn failed(
        &self,
        client: &Client,
        stop: &CancellationToken,
        fetch: &mut Fetch,
        what: &str,
        error: String,
    ) -> Turn {
        fetch.failures += 1;
        let failures = fetch.failures;
        fetch.failing_since.get_or_insert_with(Instant::now);
        if failures == 1 || failures.is_multiple_of(WARN_EVERY) {
            tracing::warn!(queue = self.queue, error = %error, failures, "{what}; retrying");
        } else {
            tracing::debug!(queue = self.queue, error = %error, failures, "{what}; retrying");
        }
        self.check_queue(client, fetch);
        if !pull::backoff(stop, failures).await {
            return Turn::Stop;
        }
        Turn::Again
    }

    /// Starts an attempt of `msg` in a free handler slot, or keeps it
    /// ahead while fewer than [`prefetch`](Self::prefetch) are.
    async fn start(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        fetch: &mut Fetch,
        msg: jetstream::Message,
        hand_back: &CancellationToken,
    ) {
        let Ok(permit) = Arc::clone(&fetch.slots).try_acquire_owned() else {
            if fetch.ahead.len() < self.prefetch {
                let leased = Instant::now();
                let lookup = Lookup::start(self, shared, &msg);
                fetch.ahead.push_back(Ahead {
                    msg,
                    leased,
                    lookup,
                });
                return;
            }
            // More came than was asked for: a pull request thought lost
            // (sent just before a reconnect) was served after all. A
            // worker never holds more than it asked for; hand it back.
            tracing::debug!(
                queue = self.queue,
                "a task arrived with no free handler; handing it back"
            );
            hand_back_unstarted(shared, &msg).await;
            return;
        };
        let now = Ahead {
            msg,
            leased: Instant::now(),
            lookup: Lookup::default(),
        };
        self.spawn_attempt(shared, fetch, permit, now, hand_back);
    }

    /// Starts the tasks pulled ahead that free slots can take.
    async fn start_ahead(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        fetch: &mut Fetch,
        hand_back: &CancellationToken,
    ) {
        while !fetch.ahead.is_empty() {
            let Ok(permit) = Arc::clone(&fetch.slots).try_acquire_owned() else {
                return;
            };
            let ahead = fetch.ahead.pop_front().expect("not empty");
            self.spawn_attempt(shared, fetch, permit, ahead, hand_back);
        }
    }

    /// Runs an attempt of `task` in the slot of `permit`.
    fn spawn_attempt(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        fetch: &Fetch,
        permit: OwnedSemaphorePermit,
        task: Ahead,
        hand_back: &CancellationToken,
    ) {
        self.running.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            permit: Some(permit),
            running: Arc::clone(&self.running),
            finished: Arc::clone(&self.finished),
            freed: Arc::clone(&fetch.freed),
            taken: fetch.held.taken(),
            held: Arc::clone(&fetch.held),
        };
        tokio::spawn(attempt::attempt(
            Arc::clone(self),
            Arc::clone(shared),
            task,
            hand_back.clone(),
            slot,
        ));
    }

    /// Waits while NATS is unreachable (fetching is paused meanwhile), then
    /// forgets the pull requests the server forgot and re-checks the
    /// queue's stream and consumer. False if stopped.
    async fn connected(
        &self,
        client: &Client,
        stop: &CancellationToken,
        fetch: &mut Fetch,
    ) -> bool {
        use async_nats::connection::State;
        if client.nats().connection_state() == State::Connected {
            if fetch.puller.reconnected() {
                tracing::info!(
                    queue = self.queue,
                    "reconnected to NATS; re-checking the queue"
                );
                self.check_queue(client, fetch);
            }
            return true;
        }
        tracing::warn!(
            queue = self.queue,
            "NATS is unreachable; fetching is paused until it is back"
        );
        while client.nats().connection_state() != State::Connected {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = stop.cancelled() => return false,
            }
        }
        tracing::info!(
            queue = self.queue,
            "NATS is back; re-checking the queue and resuming"
        );
        fetch.puller.reconnected();
        self.check_queue(client, fetch);
        true
    }

    /// Starts a check of the queue's stream and consumer (creating them
    /// again if they were deleted) unless one runs. It runs beside the
    /// pulls: during a leader election it waits out the client's timeout
    /// (a stream or consumer without a leader does not answer), and the
    /// next pull must not wait with it.
    fn check_queue(&self, client: &Client, fetch: &mut Fetch) {
        if fetch.check.is_some() {
            return;
        }
        let client = client.clone();
        let (queue, settings, source) = (self.queue, self.settings.clone(), self.source);
        fetch.check = Some(tokio::spawn(async move {
            let provisioner = client.provisioner();
            let found = match source {
                Source::Queue => provisioner.queue_consumer(queue, &settings).await,
                Source::Subscription(sub) => {
                    let retention = Duration::from_millis(sub.retention_ms);
                    provisioner
                        .subscription_consumer(sub.event, retention, queue, sub.start, &settings)
                        .await
                }
            };
            match found {
                Ok(consumer) => Some(consumer),
                Err(e) => {
                    tracing::debug!(queue, error = %e, "queue not provisioned yet");
                    None
                }
            }
        }));
    }
}

impl Fetch {
    /// When the lease of the oldest task pulled ahead is next renewed: a
    /// third of the ack wait after it was last known to hold, as a
    /// running handler renews its own.
    fn renewal_due(&self, ack_wait: Duration) -> Instant {
        self.ahead
            .iter()
            .map(|a| a.leased)
            .min()
            .map_or_else(Instant::now, |leased| leased + ack_wait / 3)
    }

    /// Renews the leases of the tasks pulled ahead that are due.
    async fn renew_ahead(&mut self, ack_wait: Duration) {
        let now = Instant::now();
        for ahead in self
            .ahead
            .iter_mut()
            .filter(|a| a.leased + ack_wait / 3 <= now)
        {
            if let Err(e) = ahead.msg.ack_with(AckKind::Progress).await {
                tracing::debug!(error = %e, "could not renew the lease of a task pulled ahead");
            } else {
                ahead.leased = now;
            }
        }
    }

    /// Pulls from the consumer a finished check of the queue found.
    async fn checked(&mut self) {
        if let Some(check) = self.check.take_if(|check| check.is_finished()) {
            if let Ok(Some(consumer)) = check.await {
                self.puller.set_consumer(consumer);
            }
        }
    }
}

/// Gives a task that never ran back to the queue without spending an attempt.
pub(crate) async fn hand_back_unstarted(shared: &Shared, msg: &jetstream::Message) {
    if let Some(id) = message::task_id(msg) {
        let known = if message::delivered(msg) > 1 {
            shared.handbacks.count(id, msg).await
        } else {
            0
        };
        shared.handbacks.record(id, msg, known).await;
    }
    let _ = msg.ack_with(AckKind::Nak(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(average_micros: u64) -> HeldFor {
        let held = HeldFor::new();
        held.freed.store(PREFETCH_AFTER, Ordering::Relaxed);
        held.average.store(average_micros, Ordering::Relaxed);
        held
    }

    #[test]
    fn tasks_pulled_ahead_are_what_the_handlers_finish_in_about_ten_ms() {
        assert_eq!(held(100).ahead(128, 1), 100);
        assert_eq!(held(100).ahead(128, 4), 128, "at most the queue's prefetch");
        assert_eq!(held(100).ahead(8, 1), 8);
        assert_eq!(held(20_000).ahead(128, 1), 1, "at least one while short");
        assert_eq!(held(20_000).ahead(128, 3), 1);
        assert_eq!(held(60_000).ahead(128, 64), 0, "long tasks: none");
        assert_eq!(held(100).ahead(0, 1), 0, "prefetch(0) turns it off");
        assert_eq!(HeldFor::new().ahead(128, 1), 0, "none before 16 tasks");
    }
}
