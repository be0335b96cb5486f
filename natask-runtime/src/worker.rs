//! One queue's worker loop and the handling of one task.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use async_nats::HeaderName;
use futures_util::FutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use natask_core::wire;
use natask_core::Backoff;
use natask_core::{
    Headers, Invocation, StateMap, TaskContext, TaskEntry, TaskError, TaskErrorKind, TaskId,
};

use crate::client::Client;
use crate::dead_letter::{self, Reason};
use crate::handback::Handbacks;
use crate::headers::{DUE_AT, ENQUEUED_AT, ID, NATS_SCHEDULER, TASK};
use crate::middleware::{Middleware, Next};
use crate::provision::{self, ConsumerSettings};
use crate::pull::{self, Pulled, Puller};
use crate::queue;
use crate::runtime::{DEFAULT_ACK_WAIT, DEFAULT_RETRIES, DEFAULT_SHUTDOWN_GRACE, DEFAULT_TIMEOUT};
use crate::tracking::{Cancellations, TaskInfo, TaskState};

/// How long a stopping worker waits for tasks already sent to it.
const STOP_DRAIN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) default_retries: u32,
    pub(crate) default_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) ack_wait: Duration,
    pub(crate) default_backoff: Backoff,
    /// Deliveries of a task no handler here knows before it is
    /// dead-lettered; the delay between them gives a worker that knows it
    /// (during a rolling deploy) the chance to take it.
    pub(crate) unknown_task_deliveries: u32,
    pub(crate) unknown_task_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_retries: DEFAULT_RETRIES,
            default_timeout: DEFAULT_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            ack_wait: DEFAULT_ACK_WAIT,
            default_backoff: Backoff::DEFAULT,
            unknown_task_deliveries: 5,
            unknown_task_delay: Duration::from_secs(5),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) states: StateMap,
    pub(crate) config: Config,
    pub(crate) handbacks: Handbacks,
    /// Built-in middleware first, then the user's, outermost first.
    pub(crate) middleware: Vec<Arc<dyn Middleware>>,
    /// Cancellation requests seen, and the tasks running here.
    pub(crate) cancellations: Arc<Cancellations>,
}

/// A handler slot; freeing it wakes the fetch loop to ask for more tasks.
struct Slot {
    _permit: OwnedSemaphorePermit,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.freed.notify_one();
    }
}

pub(crate) struct QueueWorker {
    pub(crate) queue: &'static str,
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
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let freed = Arc::new(Notify::new());
        // Below this many missing tasks a new pull waits for more free slots,
        // unless nothing is asked for at all; at one handler it is one.
        let refill_at = (self.concurrency / 4).max(1);
        let mut failures: u32 = 0;
        let mut puller = loop {
            match Puller::new(
                shared.client.nats(),
                shared.client.jetstream().clone(),
                self.consumer.clone(),
            )
            .await
            {
                Ok(puller) => break puller,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(queue = self.queue, error = %e, failures, "cannot subscribe for tasks; retrying");
                    if !pause(&stop, failures).await {
                        return;
                    }
                }
            }
        };
        // Subscribed before the first pull request, so that a pause seen
        // by the server after a worker asked for tasks is always logged.
        let pauses = queue::follow_pauses(&shared.client, self.queue, self.consumer.cached_info())
            .await
            .map(|advisories| {
                tokio::spawn(queue::log_pauses(self.queue, advisories, stop.clone()))
            });
        while !stop.is_cancelled() {
            if !self.connected(&shared.client, &stop, &mut puller).await {
                break;
            }
            let free = slots.available_permits();
            let want = free.saturating_sub(puller.owed());
            if want > 0
                && (puller.owed() == 0 || want >= refill_at)
                && puller.requests() < pull::MAX_REQUESTS
            {
                if let Err(e) = puller.request(want).await {
                    failures += 1;
                    tracing::warn!(queue = self.queue, error = %e, failures, "cannot fetch tasks; retrying");
                    if !self
                        .recover(&shared.client, &stop, &mut puller, failures)
                        .await
                    {
                        break;
                    }
                    continue;
                }
            }
            let msg = tokio::select! {
                pulled = puller.next() => match pulled {
                    Pulled::Task(msg) => msg,
                    Pulled::Ended => continue,
                    Pulled::Failed(e) => {
                        failures += 1;
                        tracing::warn!(queue = self.queue, error = %e, failures, "pulling tasks failed; retrying");
                        if !self.recover(&shared.client, &stop, &mut puller, failures).await {
                            break;
                        }
                        continue;
                    }
                },
                () = freed.notified() => continue,
                () = stop.cancelled() => break,
            };
            if failures > 0 {
                tracing::info!(queue = self.queue, "fetching tasks again");
                failures = 0;
            }
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                // More came than was asked for: a pull request thought lost
                // (sent just before a reconnect) was served after all. A
                // worker never holds a task it cannot start; hand it back.
                tracing::debug!(
                    queue = self.queue,
                    "a task arrived with no free handler; handing it back"
                );
                hand_back_unstarted(&shared, &msg).await;
                continue;
            };
            let slot = Slot {
                _permit: permit,
                freed: Arc::clone(&freed),
            };
            tokio::spawn(handle(
                Arc::clone(&self),
                Arc::clone(&shared),
                msg,
                hand_back.clone(),
                slot,
            ));
        }
        // Tasks already on the wire would wait out the ack wait; hand them
        // straight back.
        for msg in puller.close(STOP_DRAIN).await {
            hand_back_unstarted(&shared, &msg).await;
        }
        if let Some(pauses) = pauses {
            pauses.abort();
        }
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
    }

    /// Waits while NATS is unreachable (fetching is paused meanwhile), then
    /// forgets the pull requests the server forgot and re-checks the
    /// queue's stream and consumer. False if stopped.
    async fn connected(
        &self,
        client: &Client,
        stop: &CancellationToken,
        puller: &mut Puller,
    ) -> bool {
        use async_nats::connection::State;
        if client.nats().connection_state() == State::Connected {
            if puller.reconnected() {
                tracing::info!(
                    queue = self.queue,
                    "reconnected to NATS; re-checking the queue"
                );
                self.reprovision(client, puller).await;
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
        puller.reconnected();
        self.reprovision(client, puller).await;
        true
    }

    /// After `failures` failed pulls in a row: waits a little longer each
    /// time, then re-checks the queue's stream and consumer. False if
    /// stopped meanwhile.
    async fn recover(
        &self,
        client: &Client,
        stop: &CancellationToken,
        puller: &mut Puller,
        failures: u32,
    ) -> bool {
        if !pause(stop, failures).await {
            return false;
        }
        self.reprovision(client, puller).await;
        true
    }

    /// Re-checks the queue's stream and consumer (creating them again if
    /// they were deleted) and pulls from the consumer found.
    async fn reprovision(&self, client: &Client, puller: &mut Puller) {
        match provision::queue_consumer(client, self.queue, &self.settings).await {
            Ok(consumer) => puller.set_consumer(consumer),
            Err(e) => {
                tracing::debug!(queue = self.queue, error = %e, "queue not provisioned yet");
            }
        }
    }
}

/// Sleeps before the next fetch after `failures` failures in a row; false if
/// stopped meanwhile.
async fn pause(stop: &CancellationToken, failures: u32) -> bool {
    let delay = Duration::from_millis(250 * u64::from(failures.min(20)));
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}

enum Outcome {
    Finished(Result<Vec<u8>, TaskError>),
    HandedBack,
    /// [`Client::cancel`] stopped it.
    Cancelled,
    /// The handler finished, but no lease renewal was confirmed for longer
    /// than the ack wait: JetStream has given the task to another worker,
    /// which now owns its outcome.
    LeaseLost,
}

fn header(msg: &jetstream::Message, name: HeaderName) -> Option<&str> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
}

/// A header holding Unix milliseconds (`Natask-Enqueued-At`, `Natask-Due-At`).
fn header_time(msg: &jetstream::Message, name: HeaderName) -> Option<std::time::SystemTime> {
    header(msg, name)
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// The task's id: its `Natask-Id` header or, for a tick of a cron task
/// (produced by a schedule, `Nats-Scheduler` set, and no `Natask-Id` since
/// it would be the same on every tick), an id derived from the message: a
/// UUIDv7 with the time it was stored and its stream sequence, so every
/// delivery of one tick has the same id and no two ticks of a queue share one.
pub(crate) fn task_id(msg: &jetstream::Message) -> Option<TaskId> {
    match header(msg, ID) {
        Some(v) => v.parse().ok(),
        None => tick_id(msg),
    }
}

fn tick_id(msg: &jetstream::Message) -> Option<TaskId> {
    header(msg, NATS_SCHEDULER)?;
    let info = msg.info().ok()?;
    let millis = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).ok()?;
    let mut rest = [0u8; 10];
    rest[..8].copy_from_slice(&info.stream_sequence.to_be_bytes());
    // Two queues' streams can store a tick at the same millisecond and
    // sequence; the stream name's hash keeps their ids apart.
    let hash = info
        .stream
        .bytes()
        .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)));
    rest[8..].copy_from_slice(&hash.to_be_bytes());
    Some(
        uuid::Builder::from_unix_timestamp_millis(millis, &rest)
            .into_uuid()
            .into(),
    )
}

fn delivered(msg: &jetstream::Message) -> u64 {
    msg.info()
        .ok()
        .and_then(|i| u64::try_from(i.delivered).ok())
        .unwrap_or(1)
        .max(1)
}

/// Gives a task that never ran back to the queue without spending an attempt.
async fn hand_back_unstarted(shared: &Shared, msg: &jetstream::Message) {
    if let Some(id) = task_id(msg) {
        let known = if delivered(msg) > 1 {
            shared.handbacks.count(id).await
        } else {
            0
        };
        shared.handbacks.record(id, known).await;
    }
    let _ = msg.ack_with(AckKind::Nak(None)).await;
}

async fn handle(
    worker: Arc<QueueWorker>,
    shared: Arc<Shared>,
    msg: jetstream::Message,
    hand_back: CancellationToken,
    _slot: Slot,
) {
    let queue = worker.queue;
    let client = &shared.client;
    let config = &shared.config;
    let delivered = delivered(&msg);

    let Some(name) = header(&msg, TASK) else {
        let error = format!(
            "the message has no `{}` header, so no handler can be chosen; publish tasks with natask's headers (docs/wire-format.md)",
            wire::HEADER_TASK
        );
        return Box::pin(dead_letter::park(
            client,
            queue,
            "",
            &msg,
            Reason::NotATask,
            &error,
            delivered,
        ))
        .await;
    };
    let Some(id) = task_id(&msg) else {
        let error = format!(
            "the message has no valid `{}` header (a UUID); producers must set it (docs/wire-format.md)",
            wire::HEADER_ID
        );
        return Box::pin(dead_letter::park(
            client,
            queue,
            name,
            &msg,
            Reason::NotATask,
            &error,
            delivered,
        ))
        .await;
    };
    let handbacks = if delivered > 1 {
        Box::pin(shared.handbacks.count(id)).await
    } else {
        0
    };
    let Some(entry) = worker.handlers.get(name) else {
        if delivered < u64::from(config.unknown_task_deliveries) {
            tracing::warn!(queue, task = %name, %id, delivered, "no handler for this task here; handing it back for another worker");
            Box::pin(shared.handbacks.record(id, handbacks)).await;
            let _ = Box::pin(msg.ack_with(AckKind::Nak(Some(config.unknown_task_delay)))).await;
            return;
        }
        let mut known: Vec<_> = worker.handlers.keys().copied().collect();
        known.sort_unstable();
        let error = format!(
            "no handler for task `{name}` on queue `{queue}` after {delivered} deliveries (this worker knows {}); \
             deploy a worker that registers it, then replay the dead letter",
            known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        );
        Box::pin(dead_letter::park(
            client,
            queue,
            name,
            &msg,
            Reason::UnknownTask,
            &error,
            delivered - handbacks,
        ))
        .await;
        if worker.tracking {
            let mut info = TaskInfo::new(id, name, queue, TaskState::Dead);
            info.attempts = u32::try_from(delivered - handbacks).unwrap_or(u32::MAX);
            Box::pin(finish(&shared, info, Some(error))).await;
        }
        return Box::pin(shared.handbacks.clear(id)).await;
    };
    let attempt = delivered.saturating_sub(handbacks).max(1);
    let max_attempts = entry
        .retries
        .unwrap_or(worker.default_retries)
        .saturating_add(1);
    if attempt > u64::from(max_attempts) {
        let error = format!(
            "delivered {attempt} times, more than its {max_attempts} attempts, without an outcome: \
             a worker probably crashed or lost its lease while running it"
        );
        // The delivery now in hand never ran: attempt - 1 attempts were spent.
        Box::pin(dead_letter::park(
            client,
            queue,
            entry.name,
            &msg,
            Reason::Exhausted,
            &error,
            attempt - 1,
        ))
        .await;
        if worker.tracking {
            let mut info = TaskInfo::new(id, entry.name, queue, TaskState::Dead);
            info.attempts = u32::try_from(attempt - 1).unwrap_or(u32::MAX);
            Box::pin(finish(&shared, info, Some(error))).await;
        }
        return Box::pin(shared.handbacks.clear(id)).await;
    }
    let Some(running) = shared.cancellations.start(id) else {
        tracing::info!(task = entry.name, queue, %id, "task cancelled before it started; removing it");
        return Box::pin(drop_unstarted(
            &worker,
            &shared,
            &msg,
            id,
            entry.name,
            TaskState::Cancelled,
            None,
        ))
        .await;
    };

    let timeout = entry
        .timeout_ms
        .map_or(config.default_timeout, Duration::from_millis);
    let ctx = TaskContext::new(
        id,
        entry.name,
        entry.queue,
        u32::try_from(attempt).unwrap_or(u32::MAX),
        max_attempts,
        header_time(&msg, ENQUEUED_AT),
        timeout,
        context_headers(&msg),
    )
    .with_due_at(header_time(&msg, DUE_AT))
    .with_cancellation(Arc::clone(&running.flag));
    if let Some(validity) = worker.validity {
        let since = ctx.due_at().or(ctx.enqueued_at());
        if let Some(late) = since
            .and_then(|t| t.elapsed().ok())
            .filter(|l| *l > validity)
        {
            let error = format!(
                "not started within the queue's validity of {validity:?} (it became due {late:?} ago); it will not run"
            );
            tracing::warn!(task = entry.name, queue, %id, "{error}");
            return Box::pin(drop_unstarted(
                &worker,
                &shared,
                &msg,
                id,
                entry.name,
                TaskState::Expired,
                Some(error),
            ))
            .await;
        }
    }
    let started_at = std::time::SystemTime::now();
    if worker.tracking {
        Box::pin(started(&shared, &ctx, started_at, handbacks)).await;
    }
    Box::pin(crate::unique::started(client, &msg, id)).await;
    let outcome = run_handler(
        entry,
        &msg,
        &ctx,
        &shared,
        timeout,
        worker.settings.ack_wait,
        &hand_back,
        &running.token,
    )
    .await;
    let succeeded = matches!(outcome, Outcome::Finished(Ok(_)));
    let track = |state: TaskState| {
        worker.tracking.then(|| {
            let mut info = state_of(&ctx, state);
            info.started_at = Some(started_at);
            info
        })
    };
    // Settlement happens after the handler's span closed; its logs carry
    // the same fields.
    let settled_for_good = match outcome {
        Outcome::LeaseLost => {
            tracing::warn!(
                task = entry.name, queue, %id, attempt,
                "the handler finished after its lease ran out; the task was redelivered and \
                 its outcome is left to the worker that holds it now"
            );
            false
        }
        Outcome::HandedBack => {
            tracing::info!(
                task = entry.name, queue, %id, attempt,
                "shutdown grace over; task handed back to the queue without spending an attempt"
            );
            Box::pin(shared.handbacks.record(id, handbacks)).await;
            if let Some(mut info) = track(TaskState::Queued) {
                info.attempts -= 1;
                Box::pin(shared.client.record_state(&info)).await;
            }
            let _ = Box::pin(msg.ack_with(AckKind::Nak(None))).await;
            false
        }
        Outcome::Cancelled => {
            tracing::info!(task = entry.name, queue, %id, attempt, "task cancelled while it ran; its handler was stopped");
            #[cfg(feature = "metrics")]
            crate::metrics::ended_unrun(queue, entry.name, TaskState::Cancelled);
            if let Some(info) = track(TaskState::Cancelled) {
                Box::pin(finish(&shared, info, None)).await;
            }
            let _ = Box::pin(msg.ack()).await;
            true
        }
        Outcome::Finished(Ok(output)) => {
            if let Some(mut info) = track(TaskState::Succeeded) {
                info.result = serde_json::from_slice(&output).ok();
                Box::pin(finish(&shared, info, None)).await;
            }
            if let Err(e) = msg.ack().await {
                tracing::warn!(task = entry.name, queue, %id, attempt, error = %e, "task succeeded but the ack was not sent; it will run again");
            } else {
                tracing::debug!(task = entry.name, queue, %id, attempt, "task succeeded");
            }
            true
        }
        Outcome::Finished(Err(error)) => {
            let text = error.to_string();
            match error.kind() {
                TaskErrorKind::Snooze(delay) => {
                    tracing::info!(
                        task = entry.name, queue, %id, attempt,
                        ?delay,
                        "task snoozed; it runs again without spending an attempt"
                    );
                    Box::pin(shared.handbacks.record(id, handbacks)).await;
                    if let Some(info) = track(TaskState::Queued) {
                        Box::pin(shared.client.record_state(&info)).await;
                    }
                    let _ = Box::pin(msg.ack_with(AckKind::Nak(Some(delay)))).await;
                    false
                }
                kind @ (TaskErrorKind::Fatal | TaskErrorKind::Decode) => {
                    let reason = if kind == TaskErrorKind::Fatal {
                        Reason::Fatal
                    } else {
                        Reason::Decode
                    };
                    tracing::warn!(task = entry.name, queue, %id, attempt, error = %text, "task cannot succeed; no retry");
                    Box::pin(dead_letter::park(
                        client, queue, entry.name, &msg, reason, &text, attempt,
                    ))
                    .await;
                    if let Some(info) = track(TaskState::Dead) {
                        Box::pin(finish(&shared, info, Some(text))).await;
                    }
                    true
                }
                _ if ctx.is_last_attempt() => {
                    tracing::warn!(task = entry.name, queue, %id, attempt, error = %text, "task failed on its last attempt");
                    Box::pin(dead_letter::park(
                        client,
                        queue,
                        entry.name,
                        &msg,
                        Reason::Exhausted,
                        &text,
                        attempt,
                    ))
                    .await;
                    if let Some(info) = track(TaskState::Dead) {
                        Box::pin(finish(&shared, info, Some(text))).await;
                    }
                    true
                }
                _ => {
                    let seed = id.as_uuid().as_u128() as u64;
                    let delay = entry
                        .backoff
                        .unwrap_or(config.default_backoff)
                        .delay(ctx.attempt(), seed);
                    tracing::warn!(task = entry.name, queue, %id, attempt, error = %text, retry_in = ?delay, "task failed; will retry");
                    #[cfg(feature = "metrics")]
                    crate::metrics::retried(queue, entry.name);
                    if let Some(mut info) = track(TaskState::Retrying) {
                        info.last_error = Some(text);
                        Box::pin(shared.client.record_state(&info)).await;
                    }
                    let _ = Box::pin(msg.ack_with(AckKind::Nak(Some(delay)))).await;
                    false
                }
            }
        }
    };
    if settled_for_good && handbacks > 0 {
        Box::pin(shared.handbacks.clear(id)).await;
    }
    Box::pin(crate::unique::settled(
        client,
        &msg,
        id,
        succeeded,
        settled_for_good,
    ))
    .await;
}

/// The state of the attempt `ctx` describes.
fn state_of(ctx: &TaskContext, state: TaskState) -> TaskInfo {
    let mut info = TaskInfo::new(ctx.id(), ctx.task_name(), ctx.queue(), state);
    info.attempts = ctx.attempt();
    info.enqueued_at = ctx.enqueued_at();
    info.due_at = ctx.due_at();
    info
}

/// Records that attempt `ctx` started. A retry carries the previous
/// attempt's error along; the first attempt's state is sent without
/// waiting for the answer.
async fn started(
    shared: &Shared,
    ctx: &TaskContext,
    started_at: std::time::SystemTime,
    handbacks: u64,
) {
    let mut info = state_of(ctx, TaskState::Running);
    info.started_at = Some(started_at);
    if ctx.attempt() > 1 || handbacks > 0 {
        if let Ok(Some(before)) = shared.client.task_info(ctx.id()).await {
            info.last_error = before.last_error;
        }
    }
    shared.client.send_state(&info).await;
}

/// Records a terminal state.
async fn finish(shared: &Shared, mut info: TaskInfo, error: Option<String>) {
    info.finished_at = Some(std::time::SystemTime::now());
    info.last_error = error;
    shared.client.record_state(&info).await;
}

/// Removes a task that will never run (cancelled or expired) from its
/// queue, recording why.
async fn drop_unstarted(
    worker: &QueueWorker,
    shared: &Shared,
    msg: &jetstream::Message,
    id: TaskId,
    task: &str,
    state: TaskState,
    error: Option<String>,
) {
    #[cfg(feature = "metrics")]
    crate::metrics::ended_unrun(worker.queue, task, state);
    if worker.tracking {
        let mut info = TaskInfo::new(id, task, worker.queue, state);
        info.enqueued_at = header_time(msg, ENQUEUED_AT);
        finish(shared, info, error).await;
    }
    if let Err(e) = msg.double_ack().await {
        tracing::warn!(task, queue = worker.queue, %id, error = %e, "could not remove the task; it will be delivered again and dropped then");
    }
    shared.handbacks.clear(id).await;
    crate::unique::abandoned(&shared.client, msg.headers.as_ref(), id).await;
}

#[allow(clippy::too_many_arguments)] // every argument is one piece of the attempt
async fn run_handler(
    entry: &TaskEntry,
    msg: &jetstream::Message,
    ctx: &TaskContext,
    shared: &Shared,
    timeout: Duration,
    ack_wait: Duration,
    hand_back: &CancellationToken,
    cancel: &CancellationToken,
) -> Outcome {
    let invocation = Invocation {
        payload: &msg.payload,
        context: ctx,
        states: &shared.states,
    };
    let chain = Next {
        rest: &shared.middleware,
        ctx,
        inner: (entry.handler)(invocation),
    };
    let handler = AssertUnwindSafe(chain.run()).catch_unwind();
    tokio::pin!(handler);
    // One timer serves the lease renewals and the timeout. Renewing three
    // times per ack wait survives one lost renewal; renewal stops with the
    // timeout, so a hung handler cannot hold a task forever.
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let period = ack_wait / 3;
    let mut next_renewal = started + period;
    let timer = tokio::time::sleep_until(next_renewal.min(deadline));
    tokio::pin!(timer);
    // The lease runs from the delivery; each renewal the server confirms
    // extends it by the ack wait.
    let mut leased_since = started;
    loop {
        tokio::select! {
            // The handler first: one that finishes on its first poll then
            // never registers the timer or the shutdown waiter.
            biased;
            result = &mut handler => {
                let result = result.unwrap_or_else(|panic| Err(TaskError::panic(panic_message(&*panic))));
                return settled(result, leased_since, ack_wait);
            }
            () = &mut timer => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return settled(Err(TaskError::timeout(timeout)), leased_since, ack_wait);
                }
                // Boxed: the renewal is rare, and inline it would double the
                // size of every spawned task.
                let renewal = Box::pin(tokio::time::timeout(period, msg.double_ack_with(AckKind::Progress)));
                match renewal.await {
                    Ok(Ok(())) => leased_since = now,
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not renew the task's lease"),
                    Err(_) => tracing::warn!("the server did not confirm the lease renewal in time"),
                }
                next_renewal += period;
                timer.as_mut().reset(next_renewal.min(deadline));
            }
            () = hand_back.cancelled() => return Outcome::HandedBack,
            () = cancel.cancelled() => return Outcome::Cancelled,
        }
    }
}

fn settled(
    result: Result<Vec<u8>, TaskError>,
    leased_since: tokio::time::Instant,
    ack_wait: Duration,
) -> Outcome {
    if leased_since.elapsed() > ack_wait {
        Outcome::LeaseLost
    } else {
        Outcome::Finished(result)
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// The message's headers for [`TaskContext::headers`], without natask's
/// own (`Natask-*`, `Nats-Msg-Id`): the context carries those already, and
/// most tasks then need no allocation here.
fn context_headers(msg: &jetstream::Message) -> Headers {
    let mut out = Headers::new();
    if let Some(headers) = &msg.headers {
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            if is_natask_header(name) {
                continue;
            }
            for value in values {
                out.push(name, value.as_str());
            }
        }
    }
    out
}

fn is_natask_header(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("Natask-"))
        || name.eq_ignore_ascii_case(wire::HEADER_MSG_ID)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&7_u8), "a non-string panic payload");
    }

    #[test]
    fn natask_headers_stay_out_of_the_context() {
        assert!(is_natask_header("Natask-Task"));
        assert!(is_natask_header("natask-id"));
        assert!(is_natask_header("Nats-Msg-Id"));
        assert!(!is_natask_header("traceparent"));
        assert!(!is_natask_header("Natas"));
        assert!(!is_natask_header("X-Tenant"));
    }
}
