//! `Client::enqueue_many`: one result per task, in order, each task on its own.

use std::collections::HashSet;

use natask_runtime::{task, EnqueueError, State, TaskError};
use tokio::sync::mpsc;

use crate::{builder, connect, queued, recv_n, Running};

pub(crate) struct Handled(mpsc::UnboundedSender<u32>);

#[task(queue = "it_batch")]
async fn batch_item(handled: State<Handled>, n: u32, blob: String) -> Result<(), TaskError> {
    let _ = blob;
    let _ = handled.0.send(n);
    Ok(())
}

#[tokio::test]
async fn every_task_is_stored_once_and_handled_once() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    // More than the 256 publishes kept in flight.
    let count = 1_000;
    let results = client
        .enqueue_many((0..count).map(|n| BatchItem::new(n, String::new())))
        .await;
    assert_eq!(results.len(), count as usize, "one result per task");
    let ids: HashSet<_> = results
        .into_iter()
        .map(|r| r.expect("enqueued").id)
        .collect();
    assert_eq!(ids.len(), count as usize, "ids are unique");
    assert_eq!(queued(&client, "it_batch").await, u64::from(count));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_batch"]).state(Handled(tx))).await;
    let mut got = recv_n(&mut rx, count as usize).await;
    running.stop().await;
    got.sort_unstable();
    assert_eq!(
        got,
        (0..count).collect::<Vec<_>>(),
        "each task handled once"
    );
    assert!(rx.try_recv().is_err(), "nothing was handled twice");
}

#[tokio::test]
async fn a_failing_task_fails_alone_and_keeps_its_place() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let too_large = "x".repeat(2 * 1024 * 1024); // over the default max_payload of 1 MiB
    let tasks = vec![
        BatchItem::new(0, String::new()),
        BatchItem::new(1, too_large),
        BatchItem::new(2, String::new()),
    ];
    let results = client.enqueue_many(tasks).await;
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    assert!(
        matches!(
            results[1],
            Err(EnqueueError::TooLarge {
                task: "batch_item",
                ..
            })
        ),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok());
    assert_eq!(queued(&client, "it_batch").await, 2);

    let empty = client.enqueue_many(Vec::<BatchItem>::new()).await;
    assert!(empty.is_empty());
}
