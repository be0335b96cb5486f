//! Pausing and resuming a queue fleet-wide, and `Client::queue_info`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use natask_runtime::{task, Client, QueueError, QueueInfo, State, TaskError};
use tokio::sync::{mpsc, Semaphore};

use crate::{builder, connect, eventually, recv_n, Captured, Running};

pub(crate) struct Ran(mpsc::UnboundedSender<u32>);

#[task(queue = "it_pause")]
async fn paused_job(ran: State<Ran>, n: u32) -> Result<(), TaskError> {
    let _ = ran.0.send(n);
    Ok(())
}

pub(crate) struct Held {
    started: mpsc::UnboundedSender<u32>,
    release: Arc<Semaphore>,
    finished: mpsc::UnboundedSender<u32>,
}

#[task(queue = "it_queue_info")]
async fn held_job(held: State<Held>, n: u32) -> Result<(), TaskError> {
    let _ = held.started.send(n);
    held.release.acquire().await.expect("gate open").forget();
    let _ = held.finished.send(n);
    Ok(())
}

#[task(queue = "it_queue_info")]
async fn doomed_job() -> Result<(), TaskError> {
    Err(TaskError::fatal("the account is closed"))
}

#[task(queue = "it_pause_orphan")]
async fn orphan_job() -> Result<(), TaskError> {
    Ok(())
}

#[task(queue = "it_pause_idle")]
async fn idle_job() -> Result<(), TaskError> {
    Ok(())
}

/// Polls `queue_info` until `ok` holds: counts change on the server with
/// no event a test could await.
async fn queue_reaches(client: &Client, queue: &str, ok: impl Fn(&QueueInfo) -> bool) -> QueueInfo {
    eventually(
        &format!("queue `{queue}` reaching the state wanted"),
        || async {
            let info = client.queue(queue).info().await.expect("queue info");
            if ok(&info) {
                Ok(info)
            } else {
                Err(info)
            }
        },
    )
    .await
}

#[tokio::test]
async fn pausing_stops_every_worker_and_resuming_runs_what_was_enqueued_meanwhile() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Two worker processes, each with a connection of its own.
    let first =
        Running::start(builder(&connect(&server).await, &["it_pause"]).state(Ran(tx.clone())))
            .await;
    let second =
        Running::start(builder(&connect(&server).await, &["it_pause"]).state(Ran(tx))).await;
    PausedJob::new(0).enqueue(&client).await.unwrap();
    assert_eq!(recv_n(&mut rx, 1).await, [0], "served before the pause");

    client.queue("it_pause").pause().await.unwrap();
    for n in 1..=5 {
        PausedJob::new(n).enqueue(&client).await.unwrap();
    }
    let info = client.queue("it_pause").info().await.unwrap();
    assert!(info.is_paused());
    assert!(
        info.paused_until.unwrap() > SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600),
        "an indefinite pause reads as far in the future: {info:?}"
    );
    assert_eq!((info.depth, info.in_flight), (5, 0), "{info:?}");
    // Both workers ask for tasks all along: each holds a pull request.
    queue_reaches(&client, "it_pause", |i| i.waiting_pulls >= 2).await;
    // Absence of tasks, shown over a bounded window: the workers' pull
    // requests are open (above) and an unpaused consumer serves them within
    // milliseconds, so without the pause the tasks would arrive well inside it.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .is_err(),
        "no task runs while the queue is paused"
    );
    let info = client.queue("it_pause").info().await.unwrap();
    assert_eq!((info.depth, info.in_flight), (5, 0), "{info:?}");

    client.queue("it_pause").resume().await.unwrap();
    let mut got = recv_n(&mut rx, 5).await;
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3, 4, 5]);
    first.stop().await;
    second.stop().await;
    let info = client.queue("it_pause").info().await.unwrap();
    assert_eq!(
        (info.depth, info.in_flight, info.paused_until),
        (0, 0, None),
        "{info:?}"
    );
}

#[tokio::test]
async fn queue_info_counts_each_step_and_running_tasks_finish_while_paused() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let queue = "it_queue_info";
    assert!(
        matches!(
            client.queue(queue).info().await,
            Err(QueueError::NoStream { .. })
        ),
        "a queue never used has no info"
    );

    DoomedJob.enqueue(&client).await.unwrap();
    for n in 0..3 {
        HeldJob::new(n).enqueue(&client).await.unwrap();
    }
    let info = client.queue(queue).info().await.unwrap();
    assert_eq!(
        (
            info.depth,
            info.in_flight,
            info.dead_letters,
            info.waiting_pulls,
            info.paused_until
        ),
        (4, 0, 0, 0, None),
        "enqueued before any worker created the consumer: {info:?}"
    );

    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (finished_tx, mut finished) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let held = Held {
        started: started_tx,
        release: Arc::clone(&release),
        finished: finished_tx,
    };
    let running = Running::start(builder(&client, &[queue]).state(held).concurrency(2)).await;
    // The doomed task goes to the dead letters; two held tasks take both
    // handler slots and the third waits.
    let mut running_now = recv_n(&mut started, 2).await;
    running_now.sort_unstable();
    assert_eq!(running_now, [0, 1]);
    let info = queue_reaches(&client, queue, |i| i.dead_letters == 1 && i.in_flight == 2).await;
    assert_eq!((info.depth, info.paused_until), (1, None), "{info:?}");

    let until = SystemTime::now() + Duration::from_secs(3600);
    client.queue(queue).pause_until(until).await.unwrap();
    let info = client.queue(queue).info().await.unwrap();
    let paused_until = info.paused_until.expect("paused");
    let off = paused_until
        .duration_since(until)
        .unwrap_or_else(|e| e.duration());
    assert!(
        off < Duration::from_millis(1),
        "paused until {paused_until:?}, asked {until:?}"
    );
    assert_eq!(
        (info.depth, info.in_flight, info.dead_letters),
        (1, 2, 1),
        "{info:?}"
    );

    // What runs when the pause comes finishes, and is acknowledged.
    release.add_permits(2);
    let mut done = recv_n(&mut finished, 2).await;
    done.sort_unstable();
    assert_eq!(done, [0, 1]);
    let info = queue_reaches(&client, queue, |i| i.in_flight == 0).await;
    assert_eq!((info.depth, info.dead_letters), (1, 1), "{info:?}");
    // The worker has free slots again and asks for tasks, and the third
    // still does not start.
    queue_reaches(&client, queue, |i| i.waiting_pulls >= 1).await;
    running.stop().await;
    assert!(started.try_recv().is_err(), "nothing started while paused");

    client.queue(queue).resume().await.unwrap();
    let info = client.queue(queue).info().await.unwrap();
    assert_eq!(
        (
            info.depth,
            info.in_flight,
            info.dead_letters,
            info.waiting_pulls,
            info.paused_until
        ),
        (1, 0, 1, 0, None),
        "{info:?}"
    );
}

#[tokio::test]
async fn pausing_an_unknown_queue_says_it_has_no_stream_or_consumer_yet() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;

    let err = client.queue("it_pause_never").pause().await.unwrap_err();
    assert!(
        matches!(&err, QueueError::NoStream { queue } if queue == "it_pause_never"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "queue `it_pause_never` has no stream yet: no task was enqueued to it and no worker \
         served it; check the name, or start a worker serving the queue"
    );
    assert!(matches!(
        client.queue("it_pause_never").resume().await,
        Err(QueueError::NoStream { .. })
    ));

    // A producer created the stream; no worker has created the consumer.
    OrphanJob.enqueue(&client).await.unwrap();
    let err = client.queue("it_pause_orphan").pause().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "queue `it_pause_orphan` has no consumer yet: no worker has served it so far; start a \
         worker serving the queue (it creates the consumer), then pause it"
    );
    let info = client.queue("it_pause_orphan").info().await.unwrap();
    assert_eq!((info.depth, info.paused_until), (1, None), "{info:?}");

    let err = client.queue("it.pause").pause().await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidName { .. }), "{err:?}");
    assert_eq!(err.to_string(), "`it.pause` is not a valid queue name");
}

#[tokio::test]
async fn a_worker_of_a_paused_queue_waits_quietly_and_logs_the_pause_once() {
    let (logs, _guard) = Captured::start(tracing::Level::INFO);

    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let queue = "it_pause_idle";
    let running = Running::start(builder(&client, &[queue])).await;
    // Once the worker asks for tasks, it follows the queue's pauses.
    queue_reaches(&client, queue, |i| i.waiting_pulls >= 1).await;
    client.queue(queue).pause().await.unwrap();
    eventually("the pause being logged", || async {
        if logs.lines_with("no new ones are fetched").is_empty() {
            Err("not logged")
        } else {
            Ok(())
        }
    })
    .await;
    running.stop().await;

    // A worker starting on a paused queue says so, too.
    let mut pulls = client
        .nats()
        .subscribe(format!(
            "$JS.API.CONSUMER.MSG.NEXT.NATASK_Q_{queue}.workers"
        ))
        .await
        .unwrap();
    client.nats().flush().await.unwrap();
    let running = Running::start(builder(&client, &[queue])).await;
    // Pull requests sent over a bounded window longer than one request's
    // life (5 s): the server holds a request to a paused consumer until it
    // expires, and the worker then renews it, so two, or a few more if a
    // slow machine delays heartbeats past the worker's patience. A worker
    // retrying on an error, or treating the wait as one, would send dozens.
    let mut sent = 0;
    let window = tokio::time::sleep(Duration::from_secs(6));
    tokio::pin!(window);
    loop {
        tokio::select! {
            pull = pulls.next() => { pull.expect("subscribed"); sent += 1; }
            () = &mut window => break,
        }
    }
    running.stop().await;
    assert!((1..=5).contains(&sent), "{sent} pull requests in 6 s");

    assert_eq!(
        logs.lines_with("no new ones are fetched").len(),
        1,
        "one line per pause"
    );
    assert_eq!(
        logs.lines_with("queue is paused; its workers fetch no tasks")
            .len(),
        1,
        "one line at start"
    );
    let warnings = logs.lines_with(" WARN ");
    assert!(warnings.is_empty(), "{warnings:#?}");

    // A pause "until" a time already past is a resume.
    client
        .queue(queue)
        .pause_until(SystemTime::now() - Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(client.queue(queue).info().await.unwrap().paused_until, None);
}
