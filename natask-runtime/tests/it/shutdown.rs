//! Graceful shutdown lets in-flight handlers finish.

use natask_runtime::{task, State, TaskError};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

use crate::{builder, connect, queued, within, Running};

pub(crate) struct Gate {
    started: mpsc::UnboundedSender<u32>,
    release: Arc<Notify>,
    finished: mpsc::UnboundedSender<u32>,
}

#[task(queue = "it_shutdown")]
async fn slow(gate: State<Gate>, n: u32) -> Result<(), TaskError> {
    let _ = gate.started.send(n);
    gate.release.notified().await;
    let _ = gate.finished.send(n);
    Ok(())
}

#[tokio::test]
async fn in_flight_tasks_finish_before_run_until_returns() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (finished_tx, mut finished) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = Gate {
        started: started_tx,
        release: release.clone(),
        finished: finished_tx,
    };
    let running = Running::start(
        builder(&client, &["it_shutdown"])
            .state(gate)
            .concurrency(4),
    )
    .await;
    for n in 0..4 {
        Slow::new(n).enqueue(&client).await.unwrap();
    }
    for _ in 0..4 {
        within(started.recv()).await.unwrap();
    }
    // stop while all four run; release them only after the signal
    let stopping = tokio::spawn(running.stop());
    tokio::task::yield_now().await;
    release.notify_waiters();
    within(stopping).await.unwrap();
    let mut done = Vec::new();
    while let Ok(n) = finished.try_recv() {
        done.push(n);
    }
    done.sort();
    assert_eq!(
        done,
        [0, 1, 2, 3],
        "every in-flight task finished before shutdown returned"
    );
    assert_eq!(queued(&client, "it_shutdown").await, 0, "and was acked");
}
