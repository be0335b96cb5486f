//! Task state by id (`task_info`, `wait`), results and cancellation.

use std::sync::Arc;
use std::time::Duration;

use natask_runtime::{
    task, Cancelled, Client, QueuePolicy, State, TaskContext, TaskError, TaskState, TrackingError,
};
use tokio::sync::{mpsc, Semaphore};

use crate::{builder, connect, drained, eventually, queued, recv_n, Running, EVENT_DEADLINE};

/// What the handlers of this module report.
pub(crate) struct Probe {
    started: mpsc::UnboundedSender<String>,
    dropped: mpsc::UnboundedSender<String>,
    release: Arc<Semaphore>,
}

impl Probe {
    fn new() -> (
        Probe,
        mpsc::UnboundedReceiver<String>,
        mpsc::UnboundedReceiver<String>,
        Arc<Semaphore>,
    ) {
        let (started, started_rx) = mpsc::unbounded_channel();
        let (dropped, dropped_rx) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        let probe = Probe {
            started,
            dropped,
            release: Arc::clone(&release),
        };
        (probe, started_rx, dropped_rx, release)
    }
}

/// Reports when a handler's future is dropped before it finished.
struct DropGuard(mpsc::UnboundedSender<String>, String, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.2 {
            let _ = self.0.send(self.1.clone());
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct Report {
    rows: u64,
    title: String,
}

/// `mode`: `ok` returns a report, `hold` waits for a permit, `fatal` and
/// `fail` fail.
#[task(queue = "it_life", retries = 1, backoff = "fixed(1h)")]
async fn life_job(
    probe: State<Probe>,
    ctx: &TaskContext,
    mode: String,
) -> Result<Report, TaskError> {
    let _ = probe.started.send(mode.clone());
    let mut guard = DropGuard(probe.dropped.clone(), mode.clone(), false);
    let result = match mode.as_str() {
        "hold" => {
            probe.release.acquire().await.expect("gate open").forget();
            Ok(Report {
                rows: 0,
                title: "held".into(),
            })
        }
        "fatal" => Err(TaskError::fatal("the account is closed")),
        "fail" => Err(TaskError::retry("smtp is down")),
        _ => Ok(Report {
            rows: 42,
            title: format!("attempt {}", ctx.attempt()),
        }),
    };
    guard.2 = true;
    result
}

#[task(queue = "it_life_untracked")]
async fn untracked_job(probe: State<Probe>, n: u32) -> Result<(), TaskError> {
    let _ = probe.started.send(n.to_string());
    Ok(())
}

#[task(queue = "it_life_unqueued")]
async fn unqueued_job(probe: State<Probe>, n: u32) -> Result<u32, TaskError> {
    let _ = probe.started.send(n.to_string());
    Ok(n * 10)
}

#[task(queue = "it_life_queued")]
async fn queued_state_job(n: u32) -> Result<u32, TaskError> {
    Ok(n)
}

#[task(queue = "it_life_expiry")]
async fn expiring_job(probe: State<Probe>, n: u32) -> Result<(), TaskError> {
    let _ = probe.started.send(n.to_string());
    Ok(())
}

async fn state(client: &Client, id: natask_runtime::TaskId) -> natask_runtime::TaskInfo {
    client
        .task_info(id)
        .await
        .expect("task state readable")
        .expect("task state recorded")
}

#[tokio::test]
async fn every_state_is_recorded_and_results_round_trip() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;

    // Queued and scheduled: no worker yet.
    let ok = LifeJob::new("ok".into()).enqueue(&client).await.unwrap().id;
    let queued_info = state(&client, ok).await;
    assert_eq!(queued_info.state, TaskState::Queued);
    assert_eq!(
        (queued_info.task.as_str(), queued_info.queue.as_str()),
        ("life_job", "it_life")
    );
    assert_eq!(queued_info.attempts, 0);
    assert!(queued_info.enqueued_at.is_some() && queued_info.started_at.is_none());
    let later = LifeJob::new("ok".into())
        .enqueue_in(&client, Duration::from_secs(3600))
        .await
        .unwrap()
        .id;
    let scheduled = state(&client, later).await;
    assert_eq!(scheduled.state, TaskState::Delayed);
    assert!(scheduled.due_at.is_some());

    let (probe, mut started, _dropped, release) = Probe::new();
    let running = Running::start(builder(&client, &["it_life"]).state(probe)).await;

    // Succeeded, with the handler's result as JSON.
    let done = client.wait(ok, EVENT_DEADLINE).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.attempts, 1);
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    let report: Report = serde_json::from_value(done.result.clone().expect("a result")).unwrap();
    assert_eq!(
        report,
        Report {
            rows: 42,
            title: "attempt 1".into()
        }
    );
    assert_eq!(recv_n(&mut started, 1).await, ["ok"]);

    // Running: the handler holds until released.
    let held = LifeJob::new("hold".into())
        .enqueue(&client)
        .await
        .unwrap()
        .id;
    assert_eq!(recv_n(&mut started, 1).await, ["hold"]);
    let running_info = reaches(&client, held, TaskState::Running).await;
    assert_eq!(running_info.attempts, 1);
    assert!(running_info.started_at.is_some() && running_info.finished_at.is_none());
    release.add_permits(1);
    assert_eq!(
        client.wait(held, EVENT_DEADLINE).await.unwrap().state,
        TaskState::Succeeded
    );

    // Dead: a fatal error, with the error kept.
    let fatal = LifeJob::new("fatal".into())
        .enqueue(&client)
        .await
        .unwrap()
        .id;
    let dead = client.wait(fatal, EVENT_DEADLINE).await.unwrap();
    assert_eq!(dead.state, TaskState::Dead);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("the account is closed"),
        "{dead:?}"
    );

    // Retrying: the first attempt failed, the next one is an hour away.
    let failing = LifeJob::new("fail".into())
        .enqueue(&client)
        .await
        .unwrap()
        .id;
    let retrying = reaches(&client, failing, TaskState::Retrying).await;
    assert_eq!(retrying.attempts, 1);
    assert!(
        retrying
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("smtp is down"),
        "{retrying:?}"
    );

    // Waiting for a task that does not finish in time says how far it got.
    let error = client
        .wait(failing, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TrackingError::Timeout {
                last: Some(TaskState::Retrying),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("last state: retrying"),
        "{error}"
    );

    // The scheduled task is still waiting, untouched by all of this.
    assert_eq!(state(&client, later).await.state, TaskState::Delayed);
    // An id nobody enqueued has no state.
    assert!(client
        .task_info(natask_runtime::TaskId::new())
        .await
        .unwrap()
        .is_none());
    running.stop().await;
}

/// Polls `task_info` until the task is in `want`: the running and retrying
/// states are passed through, so `wait` (terminal states) cannot be used.
async fn reaches(
    client: &Client,
    id: natask_runtime::TaskId,
    want: TaskState,
) -> natask_runtime::TaskInfo {
    eventually(&format!("{id} reaching {want}"), || async {
        match client.task_info(id).await.unwrap() {
            Some(info) if info.state == want => Ok(info),
            Some(info) => {
                assert!(
                    !info.state.is_terminal(),
                    "{id} ended as {} instead of reaching {want}",
                    info.state
                );
                Err(Some(info.state))
            }
            None => Err(None),
        }
    })
    .await
}

#[tokio::test]
async fn cancelled_tasks_never_run_and_running_ones_are_stopped() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;

    // Before any worker: the queued task is removed from the queue.
    let before = LifeJob::new("ok".into()).enqueue(&client).await.unwrap().id;
    assert_eq!(queued(&client, "it_life").await, 1);
    assert_eq!(client.cancel(before).await.unwrap(), Cancelled::Removed);
    assert_eq!(
        queued(&client, "it_life").await,
        0,
        "the cancelled task left its queue"
    );
    let info = state(&client, before).await;
    assert_eq!(info.state, TaskState::Cancelled);
    assert!(info.finished_at.is_some());
    // A delayed task: its schedule is removed.
    let delayed = LifeJob::new("ok".into())
        .enqueue_in(&client, Duration::from_secs(3600))
        .await
        .unwrap()
        .id;
    assert_eq!(client.cancel(delayed).await.unwrap(), Cancelled::Removed);
    assert_eq!(state(&client, delayed).await.state, TaskState::Cancelled);
    assert_eq!(
        queued(&client, "it_life").await,
        0,
        "the schedule is gone too"
    );

    let (probe, mut started, mut dropped, _release) = Probe::new();
    let running = Running::start(builder(&client, &["it_life"]).state(probe)).await;

    // While it runs: the handler's future is dropped and the state recorded.
    let held = LifeJob::new("hold".into())
        .enqueue(&client)
        .await
        .unwrap()
        .id;
    assert_eq!(recv_n(&mut started, 1).await, ["hold"]);
    reaches(&client, held, TaskState::Running).await;
    assert_eq!(client.cancel(held).await.unwrap(), Cancelled::Stopping);
    assert_eq!(
        recv_n(&mut dropped, 1).await,
        ["hold"],
        "the handler was stopped"
    );
    let stopped = client.wait(held, EVENT_DEADLINE).await.unwrap();
    assert_eq!(stopped.state, TaskState::Cancelled);

    // Finished tasks stay as they were.
    let ok = LifeJob::new("ok".into()).enqueue(&client).await.unwrap().id;
    assert_eq!(
        client.wait(ok, EVENT_DEADLINE).await.unwrap().state,
        TaskState::Succeeded
    );
    assert_eq!(
        client.cancel(ok).await.unwrap(),
        Cancelled::Finished(TaskState::Succeeded)
    );
    assert_eq!(state(&client, ok).await.state, TaskState::Succeeded);

    // Only "hold" and the last "ok" ever started.
    assert_eq!(recv_n(&mut started, 1).await, ["ok"]);
    running.stop().await;
    assert!(started.try_recv().is_err(), "a cancelled task ran");
    assert_eq!(
        queued(&client, "it_life").await,
        0,
        "nothing was left behind"
    );
}

#[tokio::test]
async fn without_tracking_no_state_is_kept_but_cancellation_still_holds() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server)
        .await
        .with_queue(QueuePolicy::new("it_life_untracked").tracking(false))
        .unwrap();
    let cancelled = UntrackedJob::new(1).enqueue(&client).await.unwrap().id;
    // Nothing is known (an untracked task is published on its task's
    // subject, not its own), but the request is kept for the runtime
    // below, which starts after it was made.
    assert_eq!(client.task_info(cancelled).await.unwrap(), None);
    assert_eq!(client.cancel(cancelled).await.unwrap(), Cancelled::Unknown);
    let ran = UntrackedJob::new(2).enqueue(&client).await.unwrap().id;

    let (probe, mut started, _dropped, _release) = Probe::new();
    let running = Running::start(builder(&client, &["it_life_untracked"]).state(probe)).await;
    assert_eq!(recv_n(&mut started, 1).await, ["2"]);
    drained(&client, "it_life_untracked").await;
    running.stop().await;
    assert!(started.try_recv().is_err(), "the cancelled task ran");
    assert!(client.task_info(ran).await.unwrap().is_none(), "untracked");
    assert!(
        client.task_info(cancelled).await.unwrap().is_none(),
        "untracked"
    );
}

/// The entry the task bucket keeps for `id`, read directly.
async fn kept_entry(
    client: &natask_runtime::Client,
    id: natask_runtime::TaskId,
) -> Option<TaskState> {
    let bucket = client
        .jetstream()
        .get_key_value("NATASK_TASKS")
        .await
        .ok()?;
    let value = bucket.get(id.to_string()).await.unwrap()?;
    let info: natask_runtime::TaskInfo = serde_json::from_slice(&value).unwrap();
    Some(info.state)
}

#[tokio::test]
async fn a_waiting_task_is_found_on_its_own_subject_and_cancelled_there() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let queue = "it_life_unqueued";
    let cancelled = UnqueuedJob::new(1).enqueue(&client).await.unwrap().id;
    let ran = UnqueuedJob::new(2).enqueue(&client).await.unwrap().id;
    let batch: Vec<_> = client
        .enqueue_many([UnqueuedJob::new(3), UnqueuedJob::new(4)])
        .await
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    // Waiting in the queue, no task has an entry in the bucket, and each
    // is known all the same, from its message.
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .unwrap();
    for (seq, id) in (1..).zip([cancelled, ran, batch[0], batch[1]]) {
        assert_eq!(kept_entry(&client, id).await, None, "{id}");
        let info = client.task_info(id).await.unwrap().unwrap();
        assert_eq!(
            (info.id, info.state, info.task.as_str(), info.queue.as_str()),
            (id, TaskState::Queued, "unqueued_job", queue)
        );
        let stored = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(
            stored.subject.as_str(),
            format!("natask.q.{queue}.unqueued_job.{id}")
        );
        assert!(info
            .enqueued_at
            .is_some_and(|t| t <= std::time::SystemTime::now()));
    }
    // A chosen id that names a waiting task is that task's again.
    let again = client
        .enqueue_with(
            &UnqueuedJob::new(2),
            natask_runtime::EnqueueOptions::new().id(ran),
        )
        .await
        .unwrap();
    assert!(!again.created);
    // Cancelled while waiting: its message is deleted and its state kept.
    assert_eq!(client.cancel(cancelled).await.unwrap(), Cancelled::Removed);
    assert_eq!(
        kept_entry(&client, cancelled).await,
        Some(TaskState::Cancelled)
    );
    assert_eq!(queued(&client, queue).await, 3);

    let (probe, mut started, _dropped, _release) = Probe::new();
    let running = Running::start(builder(&client, &["it_life_unqueued"]).state(probe)).await;
    for (id, n) in [(ran, 2), (batch[0], 3), (batch[1], 4)] {
        let done = client.wait(id, EVENT_DEADLINE).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded);
        assert_eq!(done.result, Some(serde_json::json!(n * 10)));
        assert_eq!(done.attempts, 1);
    }
    let dropped = client.wait(cancelled, EVENT_DEADLINE).await.unwrap();
    assert_eq!(dropped.state, TaskState::Cancelled);
    assert_eq!(dropped.attempts, 0);
    drained(&client, "it_life_unqueued").await;
    running.stop().await;
    let mut ran_here = vec![];
    while let Ok(n) = started.try_recv() {
        ran_here.push(n);
    }
    ran_here.sort();
    assert_eq!(ran_here, ["2", "3", "4"], "the cancelled task ran");
}

#[tokio::test]
async fn tasks_not_started_within_their_validity_expire_and_never_run() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server)
        .await
        .with_queue(QueuePolicy::new("it_life_expiry").validity(Duration::from_secs(1)))
        .unwrap();
    let stale = [
        ExpiringJob::new(1).enqueue(&client).await.unwrap().id,
        ExpiringJob::new(2).enqueue(&client).await.unwrap().id,
    ];
    // Time passing is what is tested here: the validity runs out before
    // any worker starts.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (probe, mut started, _dropped, _release) = Probe::new();
    let running = Running::start(builder(&client, &["it_life_expiry"]).state(probe)).await;
    for id in stale {
        let info = client.wait(id, EVENT_DEADLINE).await.unwrap();
        assert_eq!(info.state, TaskState::Expired);
        assert_eq!(info.attempts, 0);
        assert!(
            info.last_error
                .as_deref()
                .unwrap_or_default()
                .contains("validity"),
            "{info:?}"
        );
    }
    // A fresh task runs.
    let fresh = ExpiringJob::new(3).enqueue(&client).await.unwrap().id;
    assert_eq!(
        client.wait(fresh, EVENT_DEADLINE).await.unwrap().state,
        TaskState::Succeeded
    );
    assert_eq!(recv_n(&mut started, 1).await, ["3"]);
    running.stop().await;
    assert!(started.try_recv().is_err(), "an expired task ran");
    assert_eq!(queued(&client, "it_life_expiry").await, 0);
}

#[task(queue = "it_life_writes")]
async fn sleepy(millis: u64) -> Result<(), TaskError> {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(())
}

#[tokio::test]
async fn a_short_task_skips_its_running_state_and_a_long_one_records_it() {
    use futures_util::StreamExt;
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let running = Running::start(builder(&client, &["it_life_writes"])).await;
    let mut states = Vec::new();
    for millis in [0, 600] {
        let id = natask_runtime::TaskId::new();
        // every write of the task's state, as JetStream receives it
        let subject = format!("$KV.{}.{id}", client.names().task_bucket());
        let mut writes = client.nats().subscribe(subject).await.unwrap();
        let options = natask_runtime::EnqueueOptions::new().id(id);
        client
            .enqueue_with(&Sleepy { millis }, options)
            .await
            .unwrap();
        let done = client.wait(id, EVENT_DEADLINE).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded);
        // the producer writes nothing (a waiting task is read from its
        // subject); the worker's writes come from one connection, in order
        let mut seen = Vec::new();
        while !seen.contains(&TaskState::Succeeded) {
            let write = crate::within(writes.next()).await.unwrap();
            let info: serde_json::Value = serde_json::from_slice(&write.payload).unwrap();
            seen.push(serde_json::from_value(info["state"].clone()).unwrap());
        }
        states.push(seen);
    }
    use TaskState::{Running as Runs, Succeeded};
    assert_eq!(
        states,
        [vec![Succeeded], vec![Runs, Succeeded]],
        "a task shorter than 250 ms is written once, a longer one twice"
    );
    running.stop().await;
}

#[tokio::test]
async fn with_the_queued_state_written_a_task_is_known_from_its_enqueue() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server)
        .await
        .with_queue(QueuePolicy::new("it_life_queued").track_queued(true))
        .unwrap();
    let one = QueuedStateJob::new(1).enqueue(&client).await.unwrap().id;
    let batch = client.enqueue_many([QueuedStateJob::new(2)]).await;
    let two = batch[0].as_ref().unwrap().id;
    for id in [one, two] {
        // The client reads what it enqueued: the entry's write is awaited.
        assert_eq!(
            client.task_info(id).await.unwrap().unwrap().state,
            TaskState::Queued
        );
        assert_eq!(
            kept_entry(&client, id).await,
            Some(TaskState::Queued),
            "{id}"
        );
    }
    assert_eq!(client.cancel(one).await.unwrap(), Cancelled::Removed);
    assert_eq!(kept_entry(&client, one).await, Some(TaskState::Cancelled));
}

#[task(queue = "it_life_burst")]
async fn burst(n: u32) -> Result<u32, TaskError> {
    tokio::task::yield_now().await;
    Ok(n)
}

/// On a bucket without replicas, final states go out as plain publishes
/// and one answer at a time confirms a batch of them (`store::tasks::finals`):
/// under load, no state of the batch may go missing.
#[tokio::test]
async fn every_task_of_a_burst_keeps_its_final_state_and_result() {
    const TASKS: u32 = 3_000;
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let mut ids = Vec::new();
    for result in client.enqueue_many((0..TASKS).map(Burst::new)).await {
        ids.push(result.unwrap().id);
    }
    let running = Running::start(builder(&client, &["it_life_burst"]).concurrency(64)).await;
    drained(&client, "it_life_burst").await;
    // A stopped runtime has had every final state confirmed (or written
    // again): nothing is read before that.
    running.stop().await;
    for (n, id) in ids.into_iter().enumerate() {
        let info = client.task_info(id).await.unwrap().expect("a final state");
        assert_eq!(info.state, TaskState::Succeeded, "task {n}");
        assert_eq!(info.result, Some(serde_json::json!(n)), "task {n}");
    }
}
