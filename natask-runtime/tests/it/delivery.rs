//! Delivery guarantees in one process: backoff, snooze, leases, hand-backs
//! on shutdown, unknown tasks, server restarts, enqueue during an outage.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use natask_runtime::{
    task, Backoff, EnqueueError, State, TaskContext, TaskError, TaskId, TaskState,
};
use tokio::sync::{mpsc, Notify};

use crate::{builder, connect, drained, eventually, queued, recv_n, within, Running};

pub(crate) struct Events(mpsc::UnboundedSender<(&'static str, u32, Instant)>);

impl Events {
    fn send(&self, what: &'static str, ctx: &TaskContext) {
        let _ = self.0.send((what, ctx.attempt(), Instant::now()));
    }
}

static TIMED_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(queue = "it_backoff", retries = 3)]
async fn timed_flaky(ev: State<Events>, ctx: &TaskContext) -> Result<(), TaskError> {
    ev.send("timed_flaky", ctx);
    if TIMED_CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(TaskError::retry("try later"));
    }
    Ok(())
}

#[tokio::test]
async fn a_task_failing_twice_succeeds_on_attempt_three_after_the_backoff() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let delay = Duration::from_millis(400);
    let running = Running::start(
        builder(&client, &["it_backoff"])
            .state(Events(tx))
            .default_backoff(Backoff::fixed(delay)),
    )
    .await;
    TimedFlaky.enqueue(&client).await.unwrap();
    let seen = recv_n(&mut rx, 3).await;
    running.stop().await;
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 2, 3]);
    for pair in seen.windows(2) {
        let gap = pair[1].2 - pair[0].2;
        assert!(
            gap >= delay,
            "retry came after {gap:?}, before the {delay:?} backoff"
        );
    }
    assert_eq!(queued(&client, "it_backoff").await, 0);
    assert!(rx.try_recv().is_err(), "no fourth run");
}

static SNOOZED: AtomicBool = AtomicBool::new(false);

#[task(queue = "it_snooze", retries = 0)]
async fn snoozer(ev: State<Events>, ctx: &TaskContext) -> Result<(), TaskError> {
    ev.send("snoozer", ctx);
    if !SNOOZED.swap(true, Ordering::SeqCst) {
        return Err(TaskError::snooze(Duration::from_millis(300)));
    }
    Ok(())
}

#[tokio::test]
async fn a_snoozed_task_runs_again_later_without_spending_an_attempt() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_snooze"]).state(Events(tx))).await;
    Snoozer.enqueue(&client).await.unwrap();
    let seen = recv_n(&mut rx, 2).await;
    running.stop().await;
    // retries = 0: had the snooze spent the only attempt, the second run
    // would have been dead-lettered instead
    assert_eq!((seen[0].1, seen[1].1), (1, 1));
    assert!(seen[1].2 - seen[0].2 >= Duration::from_millis(300));
    assert_eq!(queued(&client, "it_snooze").await, 0);
}

pub(crate) struct Long {
    started: AtomicU32,
    finished: mpsc::UnboundedSender<u32>,
}

#[task(queue = "it_lease", retries = 0, timeout = "20s")]
async fn long_running(long: State<Long>) -> Result<(), TaskError> {
    long.started.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let _ = long.finished.send(long.started.load(Ordering::SeqCst));
    Ok(())
}

#[tokio::test]
async fn a_handler_running_longer_than_three_ack_waits_keeps_its_lease_and_runs_once() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut finished) = mpsc::unbounded_channel();
    let long = Arc::new(Long {
        started: AtomicU32::new(0),
        finished: tx,
    });
    // two workers on one queue: a lost lease would hand the task to the other
    let state = || Arc::clone(&long);
    let a = Running::start(
        builder(&client, &["it_lease"])
            .ack_wait(Duration::from_secs(1))
            .state_arc(state()),
    )
    .await;
    let b = Running::start(
        builder(&client, &["it_lease"])
            .ack_wait(Duration::from_secs(1))
            .state_arc(state()),
    )
    .await;
    LongRunning.enqueue(&client).await.unwrap();
    let started_when_done = within(finished.recv()).await.unwrap();
    a.stop().await;
    b.stop().await;
    assert_eq!(
        started_when_done, 1,
        "the task was redelivered while running"
    );
    assert_eq!(long.started.load(Ordering::SeqCst), 1);
    assert_eq!(queued(&client, "it_lease").await, 0);
}

pub(crate) struct Blocker {
    runs: mpsc::UnboundedSender<u32>,
    release: Notify,
}

#[task(queue = "it_handback", retries = 0)]
async fn blocks(b: State<Blocker>, ctx: &TaskContext) -> Result<(), TaskError> {
    let _ = b.runs.send(ctx.attempt());
    b.release.notified().await;
    Ok(())
}

#[tokio::test]
async fn a_task_handed_back_at_shutdown_does_not_spend_an_attempt() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut runs) = mpsc::unbounded_channel();
    let blocker = Arc::new(Blocker {
        runs: tx,
        release: Notify::new(),
    });
    let first = Running::start(
        builder(&client, &["it_handback"])
            .shutdown_grace(Duration::from_millis(200))
            .state_arc(Arc::clone(&blocker)),
    )
    .await;
    Blocks.enqueue(&client).await.unwrap();
    assert_eq!(within(runs.recv()).await, Some(1));
    let stop_started = Instant::now();
    first.stop().await; // the grace runs out: handed back, not run to the end
    assert!(
        stop_started.elapsed() < Duration::from_secs(5),
        "the hand-back does not wait for the ack wait"
    );

    let second =
        Running::start(builder(&client, &["it_handback"]).state_arc(Arc::clone(&blocker))).await;
    // taken at once by the next worker, still on its first (and only) attempt
    assert_eq!(within(runs.recv()).await, Some(1));
    blocker.release.notify_waiters();
    second.stop().await;
    assert_eq!(queued(&client, "it_handback").await, 0);
}

pub(crate) struct Seen(mpsc::UnboundedSender<u64>);

#[task(queue = "it_unknown")]
async fn known(seen: State<Seen>, n: u64) -> Result<(), TaskError> {
    let _ = seen.0.send(n);
    Ok(())
}

#[tokio::test]
async fn unknown_task_names_and_empty_bodies_are_parked_and_the_tasks_around_them_run() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    Known::new(1).enqueue(&client).await.unwrap();
    let ghost = TaskId::new().to_string();
    let empty = TaskId::new().to_string();
    for (task, id, body) in [("ghost", &ghost, ""), ("known", &empty, "")] {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Natask-Task", task);
        h.insert("Natask-Id", id.as_str());
        let body = if task == "ghost" { "{\"n\":1}" } else { body };
        client
            .jetstream()
            .publish_with_headers(format!("natask.q.it_unknown.{task}"), h, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    Known::new(2).enqueue(&client).await.unwrap();

    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_unknown"])
            .state(Seen(tx))
            .unknown_task_grace(3, Duration::from_millis(100)),
    )
    .await;
    let mut handled = recv_n(&mut rx, 2).await;
    handled.sort();
    assert_eq!(handled, [1, 2]);
    let mut letters = [
        within(dead.next()).await.unwrap(),
        within(dead.next()).await.unwrap(),
    ];
    running.stop().await;
    let h = |m: &async_nats::Message, n: &str| {
        m.headers
            .as_ref()
            .unwrap()
            .get(n)
            .unwrap()
            .as_str()
            .to_owned()
    };
    letters.sort_by_key(|m| h(m, "Natask-Reason"));
    assert_eq!(h(&letters[0], "Natask-Reason"), "decode");
    assert_eq!(h(&letters[0], "Natask-Id"), empty);
    assert_eq!(
        h(&letters[0], "Natask-Error"),
        "payload does not decode: EOF while parsing a value at line 1 column 0"
    );
    assert_eq!(h(&letters[1], "Natask-Reason"), "unknown_task");
    assert_eq!(h(&letters[1], "Natask-Id"), ghost);
    assert_eq!(
        h(&letters[1], "Natask-Error"),
        "no handler for task `ghost` on queue `it_unknown` after 3 deliveries (this worker knows `known`); \
         deploy a worker that registers it, then replay the dead letter"
    );
    assert_eq!(queued(&client, "it_unknown").await, 0);
}

static REPLAY_FIXED: AtomicBool = AtomicBool::new(false);

#[task(queue = "it_replay", retries = 1)]
async fn needs_fix(ev: State<Events>, ctx: &TaskContext, n: u32) -> Result<u32, TaskError> {
    ev.send("needs_fix", ctx);
    if REPLAY_FIXED.load(Ordering::SeqCst) {
        Ok(n)
    } else {
        Err(TaskError::retry(format!("bug #{n}")))
    }
}

/// Waits until `queue` has `n` dead letters stored. A subscriber of
/// `natask.dlq.>` sees a dead letter a moment before the stream serves it.
async fn stored_dead_letters(client: &natask_runtime::Client, queue: &str, n: usize) {
    eventually(&format!("{n} dead letters being stored"), || async {
        let stored = client.dead_letters().list(queue, 0, n + 1).await.unwrap();
        if stored.len() >= n {
            Ok(())
        } else {
            Err(format!("{} stored", stored.len()))
        }
    })
    .await;
}

#[task(queue = "it_replay_again")]
async fn still_broken() -> Result<(), TaskError> {
    Err(TaskError::fatal("still broken"))
}

#[tokio::test]
async fn a_replayed_task_that_fails_again_is_dead_lettered_again() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let running = Running::start(builder(&client, &["it_replay_again"])).await;
    let id = StillBroken::new().enqueue(&client).await.unwrap().id;
    let dead = client.wait(id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(dead.state, natask_runtime::TaskState::Dead);
    stored_dead_letters(&client, "it_replay_again", 1).await;
    let first = client.dead_letters().get(id).await.unwrap();

    // Within the dead-letter stream's duplicate window (2 min): the second
    // letter was once taken for a copy of the first, and the task was lost.
    client.dead_letters().replay(id).await.unwrap();
    stored_dead_letters(&client, "it_replay_again", 1).await;
    let again = client.dead_letters().get(id).await.unwrap();
    assert!(again.sequence > first.sequence, "a new letter");
    assert_eq!(again.reason, "fatal");
    running.stop().await;
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_with_attempts_reset_and_purged() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_replay"])
            .state(Events(tx))
            .default_backoff(Backoff::fixed(Duration::from_millis(10))),
    )
    .await;
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(NeedsFix::new(n).enqueue(&client).await.unwrap().id);
    }
    for _ in 0..3 {
        within(dead.next()).await.unwrap();
    }
    assert_eq!(recv_n(&mut rx, 6).await.len(), 6, "two attempts each");
    stored_dead_letters(&client, "it_replay", 3).await;

    let page1 = client.dead_letters().list("it_replay", 0, 2).await.unwrap();
    let page2 = client
        .dead_letters()
        .list("it_replay", page1[1].sequence, 2)
        .await
        .unwrap();
    assert_eq!((page1.len(), page2.len()), (2, 1));
    let listed: Vec<_> = page1.iter().chain(&page2).map(|l| l.id).collect();
    assert_eq!(
        listed.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
    let first = &page1[0];
    assert_eq!(
        (
            first.task.as_deref(),
            first.queue.as_str(),
            first.reason.as_str()
        ),
        (Some("needs_fix"), "it_replay", "exhausted")
    );
    assert_eq!(first.attempts, 2);
    assert!(first.error.starts_with("bug #"));
    assert!(first.failed_at.is_some());
    assert!(client
        .dead_letters()
        .list("it_other", 0, 10)
        .await
        .unwrap()
        .is_empty());

    REPLAY_FIXED.store(true, Ordering::SeqCst);
    client.dead_letters().replay(ids[0]).await.unwrap();
    let (_, attempt, _) = within(rx.recv()).await.unwrap();
    assert_eq!(attempt, 1, "attempts start again");
    let err = client.dead_letters().replay(ids[0]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no dead letter with id `{}`", ids[0])
    );

    assert_eq!(
        client.dead_letters().replay_all("it_replay").await.unwrap(),
        2
    );
    assert_eq!(
        recv_n(&mut rx, 2)
            .await
            .iter()
            .map(|e| e.1)
            .collect::<Vec<_>>(),
        [1, 1]
    );
    running.stop().await;
    assert!(rx.try_recv().is_err());
    assert!(client
        .dead_letters()
        .list("it_replay", 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(queued(&client, "it_replay").await, 0);

    // purge deletes without replaying
    REPLAY_FIXED.store(false, Ordering::SeqCst);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_replay"])
            .state(Events(tx))
            .default_backoff(Backoff::fixed(Duration::from_millis(10))),
    )
    .await;
    NeedsFix::new(9).enqueue(&client).await.unwrap();
    within(dead.next()).await.unwrap();
    recv_n(&mut rx, 2).await;
    running.stop().await;
    stored_dead_letters(&client, "it_replay", 1).await;
    assert_eq!(client.dead_letters().purge("it_replay").await.unwrap(), 1);
    assert!(client
        .dead_letters()
        .list("it_replay", 0, 10)
        .await
        .unwrap()
        .is_empty());
}

pub(crate) struct Done(mpsc::UnboundedSender<TaskId>);

#[task(queue = "it_restart", retries = 10)]
async fn survive(done: State<Done>, ctx: &TaskContext, n: u32) -> Result<(), TaskError> {
    let _ = n;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let _ = done.0.send(ctx.id());
    Ok(())
}

#[tokio::test]
async fn a_server_killed_and_restarted_mid_run_loses_no_task_and_the_worker_resumes_by_itself() {
    const TASKS: usize = 1_000;
    let mut server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let mut ids = HashSet::new();
    for n in 0..TASKS as u32 {
        ids.insert(Survive::new(n).enqueue(&client).await.unwrap().id);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_restart"])
            .state(Done(tx))
            .concurrency(8),
    )
    .await;
    let mut seen = HashSet::new();
    while seen.len() < TASKS / 4 {
        seen.insert(within(rx.recv()).await.unwrap());
    }
    server.kill(); // SIGKILL: no clean shutdown
    server.restart();
    while seen.len() < TASKS {
        seen.insert(within(rx.recv()).await.unwrap());
    }
    assert_eq!(seen, ids, "every task ran after the restart");
    // Tasks that ran just before the kill can run again (their acks died
    // with the server); the queue drains once those have run.
    drained(&client, "it_restart").await;
    running.stop().await;
    // Final states sent around the kill, whose answers never came or came
    // on the new connection, were written again: every task has its own.
    for id in ids {
        let info = client.task_info(id).await.unwrap();
        assert_eq!(info.map(|i| i.state), Some(TaskState::Succeeded), "{id}");
    }
}

#[task(queue = "it_outage")]
async fn during_outage(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

#[tokio::test]
async fn enqueue_while_nats_is_down_fails_after_the_timeout_instead_of_hanging() {
    let mut server = natask_testing::NatsServer::start();
    let client = connect(&server)
        .await
        .with_timeout(Duration::from_millis(500));
    DuringOutage::new(1).enqueue(&client).await.unwrap();
    server.kill();
    let started = Instant::now();
    let err = DuringOutage::new(2).enqueue(&client).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // nothing answers: sent again until the timeout, which names the id
    // to enqueue it again with
    let EnqueueError::Timeout { id, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        err.to_string(),
        format!(
            "task `during_outage` (id {id}) on queue `it_outage` was not confirmed within 500ms and \
             may or may not be stored; is NATS reachable? enqueue it again with \
             EnqueueOptions::id({id}) to store it at most once"
        )
    );
    server.restart();
    // the same client works again once the server is back
    eventually("the client recovering", || async {
        DuringOutage::new(3).enqueue(&client).await
    })
    .await;
}

pub(crate) struct Busy(mpsc::UnboundedSender<u32>);

#[task(queue = "it_no_overdelivery")]
async fn busy_job(busy: State<Busy>, n: u32) -> Result<(), TaskError> {
    // Yield a few times, so that handlers overlap and slots free up out of
    // order while pull requests are outstanding.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    let _ = busy.0.send(n);
    Ok(())
}

#[tokio::test]
async fn a_worker_is_never_sent_more_tasks_than_it_has_free_handlers() {
    const TASKS: u32 = 10_000;
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    for result in client.enqueue_many((0..TASKS).map(BusyJob::new)).await {
        result.unwrap();
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_no_overdelivery"])
            .state(Busy(tx))
            .concurrency(256),
    )
    .await;
    let mut seen = HashSet::new();
    while seen.len() < TASKS as usize {
        seen.insert(within(rx.recv()).await.unwrap());
    }
    running.stop().await;
    // A task sent beyond the free handlers is handed back (a nak), and
    // JetStream counts its next delivery as a redelivery.
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream("it_no_overdelivery"))
        .await
        .unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("workers").await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.num_redelivered, 0, "{info:?}");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(queued(&client, "it_no_overdelivery").await, 0);
}

/// Which of two workers ran a task.
struct WorkerName(&'static str, mpsc::UnboundedSender<&'static str>);

#[task(queue = "it_prefetch_long", retries = 0)]
async fn long_task(worker: State<WorkerName>, n: u32) -> Result<(), TaskError> {
    let _ = n;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = worker.1.send(worker.0);
    Ok(())
}

#[tokio::test]
async fn prefetch_never_holds_long_tasks_back_from_a_free_worker() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = |name| {
        let builder = builder(&client, &["it_prefetch_long"])
            .concurrency(1)
            .state(WorkerName(name, tx.clone()));
        Running::start(builder)
    };
    let (a, b) = (start("a").await, start("b").await);
    for n in 0..8 {
        LongTask { n }.enqueue(&client).await.unwrap();
    }
    let ran = recv_n(&mut rx, 8).await;
    let by_a = ran.iter().filter(|w| **w == "a").count();
    // With one handler each and tasks of 200 ms, a worker that pulled
    // ahead would take the rest of the queue after its first task and
    // leave the other idle (7 to 1); without prefetch they share it.
    assert!((3..=5).contains(&by_a), "worker a ran {by_a} of 8: {ran:?}");
    a.stop().await;
    b.stop().await;
}

#[task(queue = "it_format")]
async fn formatted(seen: State<Seen>, n: u64) -> Result<(), TaskError> {
    let _ = seen.0.send(n);
    Ok(())
}

#[tokio::test]
async fn a_task_in_an_unknown_wire_format_is_handed_back_then_parked_never_run() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    Formatted::new(1).enqueue(&client).await.unwrap();
    let future = TaskId::new().to_string();
    let headers = [
        ("Natask-Task", "formatted"),
        ("Natask-Id", future.as_str()),
        ("Natask-Format", "99"),
    ];
    crate::publish_raw(
        &client,
        "natask.q.it_format.formatted",
        &headers,
        "{\"n\":99}",
    )
    .await;
    Formatted::new(2).enqueue(&client).await.unwrap();

    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_format"])
            .state(Seen(tx))
            .unknown_task_grace(3, Duration::from_millis(100)),
    )
    .await;
    let letter = within(dead.next()).await.unwrap();
    let mut handled = recv_n(&mut rx, 2).await;
    running.stop().await;
    handled.sort();
    assert_eq!(handled, [1, 2]);
    assert!(rx.try_recv().is_err(), "format 99 never ran as format 1");
    let h = |n: &str| crate::header(&letter, n);
    assert_eq!(h("Natask-Id"), future);
    assert_eq!(h("Natask-Reason"), "unknown_format");
    assert_eq!(
        h("Natask-Error"),
        "task `formatted` on queue `it_format` is in wire format `99`, which no worker read after 3 \
         deliveries (this one reads formats 1 and 2); deploy a worker that reads it, then replay the dead letter"
    );
    assert_eq!(queued(&client, "it_format").await, 0);
}
