//! Queue policies: applied to what natask creates, attached to (and
//! reported) where the server already has something else, applied on
//! request, and never creating anything under `Provisioning::NoCreate`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::{DiscardPolicy, StorageType};
use futures_util::StreamExt;
use natask_runtime::{
    task, BuildError, Client, Drift, EnqueueError, ProvisionError, Provisioning, QueueLimit,
    QueuePolicy, State, Storage, TaskError, WhenFull,
};
use tokio::sync::{mpsc, watch};

use crate::{builder, connect, drained, queued, recv_n, within, Captured, Running};

#[task(queue = "it_policy")]
async fn policy_job(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

#[task(queue = "it_policy_retries")]
async fn always_retries() -> Result<(), TaskError> {
    Err(TaskError::retry("not yet"))
}

/// Handlers running right now, the most seen at once, and a gate they wait at.
pub(crate) struct Gate {
    running: AtomicUsize,
    most: AtomicUsize,
    started: mpsc::UnboundedSender<u32>,
    open: watch::Receiver<bool>,
}

#[task(queue = "it_policy_gate")]
async fn gated(gate: State<Gate>, n: u32) -> Result<(), TaskError> {
    let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
    gate.most.fetch_max(now, Ordering::SeqCst);
    let _ = gate.started.send(n);
    let mut open = gate.open.clone();
    let _ = open.wait_for(|o| *o).await;
    gate.running.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

async fn stream_config(client: &Client, queue: &str) -> async_nats::jetstream::stream::Config {
    let mut stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .expect("queue stream exists");
    stream.info().await.expect("stream info").config.clone()
}

async fn consumer_config(client: &Client, queue: &str) -> async_nats::jetstream::consumer::Config {
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .expect("queue stream exists");
    stream
        .consumer_info(natask_runtime::wire::CONSUMER)
        .await
        .expect("queue consumer exists")
        .config
}

fn fields(drift: &[Drift]) -> Vec<(&'static str, &str, &str)> {
    drift
        .iter()
        .map(|d| (d.field, d.live.as_str(), d.wanted.as_str()))
        .collect()
}

#[tokio::test]
async fn the_first_enqueue_creates_the_stream_from_the_policy() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server)
        .await
        .with_queue(
            QueuePolicy::new("it_policy")
                .storage(Storage::Memory)
                .max_tasks(100)
                .max_bytes(1 << 20)
                .when_full(WhenFull::DropOldest)
                .dedup_window(Duration::from_secs(30)),
        )
        .unwrap();
    PolicyJob::new(1).enqueue(&client).await.unwrap();

    let config = stream_config(&client, "it_policy").await;
    assert_eq!(config.storage, StorageType::Memory);
    assert_eq!(config.num_replicas, 1);
    assert_eq!(config.max_messages, 100);
    assert_eq!(config.max_bytes, 1 << 20);
    assert_eq!(config.discard, DiscardPolicy::Old);
    assert_eq!(config.duplicate_window, Duration::from_secs(30));
    assert_eq!(client.queue("it_policy").drift().await.unwrap(), []);
}

#[tokio::test]
async fn a_runtime_creates_the_consumer_from_the_policy_and_runs_that_many_handlers() {
    let server = natask_testing::NatsServer::start();
    let queue = "it_policy_gate";
    let client = connect(&server)
        .await
        .with_queue(
            QueuePolicy::new(queue)
                .max_in_flight(7)
                .ack_wait(Duration::from_secs(5))
                .concurrency(3),
        )
        .unwrap();
    let (started, mut starts) = mpsc::unbounded_channel();
    let (open, opened) = watch::channel(false);
    let gate = Arc::new(Gate {
        running: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        started,
        open: opened,
    });
    // the runtime's own settings lose to the policy's
    let running = Running::start(
        builder(&client, &[queue])
            .concurrency(16)
            .ack_wait(Duration::from_secs(60))
            .state_arc(Arc::clone(&gate)),
    )
    .await;
    let consumer = consumer_config(&client, queue).await;
    assert_eq!(consumer.max_ack_pending, 7);
    assert_eq!(consumer.ack_wait, Duration::from_secs(5));
    let stream = stream_config(&client, queue).await;
    assert_eq!(stream.storage, StorageType::File);
    assert_eq!(stream.max_messages, -1);
    // no limit: nothing is discarded, and delayed tasks stay possible (2.12+)
    assert_eq!(stream.discard, DiscardPolicy::Old);
    assert_eq!(
        stream.duplicate_window,
        natask_runtime::DEFAULT_DEDUP_WINDOW
    );
    assert_eq!(client.queue(queue).drift().await.unwrap(), []);

    for n in 0..6 {
        Gated::new(n).enqueue(&client).await.unwrap();
    }
    recv_n(&mut starts, 3).await;
    assert_eq!(gate.most.load(Ordering::SeqCst), 3);
    open.send(true).unwrap();
    recv_n(&mut starts, 3).await;
    running.stop().await;
    assert_eq!(gate.most.load(Ordering::SeqCst), 3, "concurrency(3) held");
}

#[tokio::test]
async fn the_policy_retries_apply_to_tasks_that_set_none() {
    let server = natask_testing::NatsServer::start();
    let queue = "it_policy_retries";
    let client = connect(&server)
        .await
        .with_queue(QueuePolicy::new(queue).retries(0))
        .unwrap();
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    client.nats().flush().await.unwrap();
    let running = Running::start(builder(&client, &[queue]).default_retries(5)).await;
    AlwaysRetries::new().enqueue(&client).await.unwrap();
    let letter = within(dead.next()).await.expect("a dead letter");
    running.stop().await;
    let attempts = letter
        .headers
        .as_ref()
        .and_then(|h| h.get("Natask-Attempts"))
        .map(|v| v.as_str().to_owned());
    assert_eq!(attempts.as_deref(), Some("1"), "retries(0): one attempt");
}

#[tokio::test]
async fn an_existing_queue_is_attached_to_as_it_is_and_update_queue_applies_the_policy() {
    let (logs, _guard) = Captured::start(tracing::Level::WARN);

    let server = natask_testing::NatsServer::start();
    let queue = "it_policy";
    let first = connect(&server)
        .await
        .with_queue(
            QueuePolicy::new(queue)
                .max_in_flight(5)
                .max_tasks(10)
                .dedup_window(Duration::from_secs(60)),
        )
        .unwrap();
    builder(&first, &[queue]).build().await.unwrap();
    assert!(
        logs.lines_with(" WARN ").is_empty(),
        "{:#?}",
        logs.lines_with(" WARN ")
    );

    let second = connect(&server)
        .await
        .with_queue(
            QueuePolicy::new(queue)
                .max_in_flight(2)
                .max_tasks(20)
                .when_full(WhenFull::DropOldest)
                .dedup_window(Duration::from_secs(30))
                .ack_wait(Duration::from_secs(10)),
        )
        .unwrap();
    builder(&second, &[queue]).build().await.unwrap();
    PolicyJob::new(1).enqueue(&second).await.unwrap();
    // a second runtime of the same client does not repeat the warnings
    builder(&second, &[queue]).build().await.unwrap();
    // attached, not rewritten
    assert_eq!(consumer_config(&second, queue).await.max_ack_pending, 5);
    assert_eq!(stream_config(&second, queue).await.max_messages, 10);
    let want = [
        ("max_tasks", "10", "20"),
        ("when_full", "refuse", "drop_oldest"),
        ("dedup_window", "60s", "30s"),
        ("max_in_flight", "5", "2"),
        ("ack_wait", "30s", "10s"),
    ];
    let drift = second.queue(queue).drift().await.unwrap();
    assert_eq!(fields(&drift), want);
    let warnings = logs.lines_with(" WARN ");
    assert_eq!(warnings.len(), want.len(), "{warnings:#?}");
    for (field, live, wanted) in want {
        let line = format!("has {field} = {live} but its policy says {wanted}");
        let found = warnings
            .iter()
            .filter(|w| w.contains(&line) && w.contains(queue))
            .count();
        assert_eq!(found, 1, "warnings `{line}` in {warnings:#?}");
    }

    let changed = second.queue(queue).update().await.unwrap();
    assert_eq!(changed, drift);
    assert_eq!(second.queue(queue).drift().await.unwrap(), []);
    let stream = stream_config(&second, queue).await;
    assert_eq!(stream.max_messages, 20);
    assert_eq!(stream.discard, DiscardPolicy::Old);
    assert_eq!(stream.duplicate_window, Duration::from_secs(30));
    let consumer = consumer_config(&second, queue).await;
    assert_eq!(consumer.max_ack_pending, 2);
    assert_eq!(consumer.ack_wait, Duration::from_secs(10));
    assert_eq!(second.queue(queue).update().await.unwrap(), []);
    assert_eq!(queued(&second, queue).await, 1, "the queued task survived");

    // what the server cannot change is an error, and nothing changes
    let memory = connect(&server)
        .await
        .with_queue(
            QueuePolicy::new(queue)
                .storage(Storage::Memory)
                .max_tasks(50),
        )
        .unwrap();
    let error = memory.queue(queue).update().await.unwrap_err();
    assert!(
        matches!(&error, ProvisionError::Immutable { field: "storage", live, wanted, .. }
            if live == "file" && wanted == "memory"),
        "{error:?}"
    );
    assert!(error.to_string().contains("cannot be changed"), "{error}");
    assert_eq!(stream_config(&second, queue).await.max_messages, 20);
}

#[tokio::test]
async fn no_create_refuses_a_missing_queue_and_attaches_to_an_existing_one() {
    let server = natask_testing::NatsServer::start();
    let queue = "it_policy";
    let locked = connect(&server)
        .await
        .with_provisioning(Provisioning::NoCreate);

    let error = PolicyJob::new(1).enqueue(&locked).await.unwrap_err();
    let EnqueueError::Provision {
        source: ProvisionError::Missing { stream, consumer },
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((stream.as_str(), consumer), ("NATASK_Q_it_policy", &None));
    let message = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        message.contains("stream `NATASK_Q_it_policy` does not exist")
            && message.contains("must create it"),
        "{message}"
    );
    let error = builder(&locked, &[queue]).build().await.unwrap_err();
    assert!(
        matches!(
            &error,
            BuildError::Provision {
                source: ProvisionError::Missing { consumer: None, .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(locked
        .jetstream()
        .get_stream("NATASK_Q_it_policy")
        .await
        .is_err());

    // an operator creates the stream: producers attach
    let operator = connect(&server).await;
    operator.queue(queue).update().await.unwrap();
    PolicyJob::new(1).enqueue(&locked).await.unwrap();
    // ...but the consumer is still missing
    let error = builder(&locked, &[queue]).build().await.unwrap_err();
    match &error {
        BuildError::Provision {
            source: ProvisionError::Missing { consumer, .. },
            ..
        } => assert_eq!(consumer.as_deref(), Some(natask_runtime::wire::CONSUMER)),
        other => panic!("{other:?}"),
    }
    // once a worker has created it (and the dead-letter stream and the
    // hand-back bucket), a locked-down worker serves the queue
    builder(&operator, &[queue]).build().await.unwrap();
    let running = Running::start(builder(&locked, &[queue])).await;
    drained(&locked, queue).await;
    running.stop().await;
}

#[tokio::test]
async fn a_full_queue_refuses_a_task_and_keeps_every_queued_one() {
    let server = natask_testing::NatsServer::start();
    let queue = "it_policy";
    let client = connect(&server)
        .await
        .with_queue(QueuePolicy::new(queue).max_tasks(5))
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(PolicyJob::new(n).enqueue(&client).await.unwrap().id);
    }
    let error = PolicyJob::new(5).enqueue(&client).await.unwrap_err();
    match &error {
        EnqueueError::QueueFull {
            queue: q,
            task,
            limit,
        } => {
            assert_eq!((*q, *task), (queue, "policy_job"));
            assert_eq!(*limit, QueueLimit::MaxTasks);
        }
        other => panic!("{other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("queue `it_policy` is full") && message.contains("raise"),
        "{message}"
    );
    // enqueue_many says the same, per task
    let many = client
        .enqueue_many([PolicyJob::new(6), PolicyJob::new(7)])
        .await;
    assert!(
        many.iter()
            .all(|r| matches!(r, Err(EnqueueError::QueueFull { .. }))),
        "{many:?}"
    );
    // every earlier task is still there, in order
    assert_eq!(queued(&client, queue).await, 5);
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .unwrap();
    for (seq, id) in (1..).zip(&ids) {
        let message = stream.get_raw_message(seq).await.unwrap();
        let header = message
            .headers
            .get("Nats-Msg-Id")
            .unwrap()
            .as_str()
            .to_owned();
        assert_eq!(header, id.to_string());
    }

    // JetStream cannot hold delayed tasks in a stream that refuses when full
    let error = client
        .enqueue_in(&PolicyJob::new(6), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            EnqueueError::Provision {
                source: ProvisionError::RefuseWithDelays { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(queued(&client, queue).await, 5);

    // a byte limit refuses the same way
    let bytes = connect(&server)
        .await
        .with_queue(QueuePolicy::new("it_policy_retries").max_bytes(1000))
        .unwrap();
    let mut stored = 0;
    let error = loop {
        match AlwaysRetries::new().enqueue(&bytes).await {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 100, "a 1000-byte queue took {stored} tasks");
    };
    assert!(
        matches!(
            &error,
            EnqueueError::QueueFull {
                limit: QueueLimit::MaxBytes,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(queued(&bytes, "it_policy_retries").await, stored);

    // DropOldest makes room instead
    let dropping = connect(&server)
        .await
        .with_queue(
            QueuePolicy::new("it_policy_gate")
                .max_tasks(2)
                .when_full(WhenFull::DropOldest),
        )
        .unwrap();
    for n in 0..3 {
        Gated::new(n).enqueue(&dropping).await.unwrap();
    }
    assert_eq!(queued(&dropping, "it_policy_gate").await, 2);
}

#[tokio::test]
async fn an_invalid_policy_is_refused_before_anything_is_created() {
    let server = natask_testing::NatsServer::start();
    let queue = "it_policy";
    let cases = [
        (
            QueuePolicy::new(queue).max_in_flight(0),
            "max_in_flight",
            "must be at least 1, got 0",
        ),
        (
            QueuePolicy::new(queue).concurrency(0),
            "concurrency",
            "must be at least 1, got 0",
        ),
        (
            QueuePolicy::new(queue).ack_wait(Duration::from_millis(500)),
            "ack_wait",
            "must be at least 1s, got 500ms",
        ),
        (
            QueuePolicy::new(queue).replicas(7),
            "replicas",
            "must be between 1 and 5, got 7",
        ),
        (
            QueuePolicy::new(queue).max_tasks(0),
            "max_tasks",
            "must be at least 1, got 0",
        ),
        (
            QueuePolicy::new(queue).max_bytes(-5),
            "max_bytes",
            "must be at least 1, got -5",
        ),
        (
            QueuePolicy::new(queue).dedup_window(Duration::ZERO),
            "dedup_window",
            "must be longer than zero",
        ),
    ];
    for (policy, field, problem) in cases {
        let invalid = policy.validate().unwrap_err();
        assert_eq!((invalid.field, invalid.problem.as_str()), (field, problem));
        let client = connect(&server).await.with_queue(policy).unwrap();
        let error = builder(&client, &[queue]).build().await.unwrap_err();
        assert!(
            matches!(&error, BuildError::InvalidPolicy(p) if p.field == field),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("invalid policy of queue `it_policy`: `{field}` {problem}")
        );
        let error = PolicyJob::new(1).enqueue(&client).await.unwrap_err();
        assert!(
            matches!(&error, EnqueueError::Provision { source: ProvisionError::InvalidPolicy(p), .. } if p.field == field),
            "{error:?}"
        );
    }
    assert!(client_has_no_stream(&server, queue).await);
}

async fn client_has_no_stream(server: &natask_testing::NatsServer, queue: &str) -> bool {
    let client = connect(server).await;
    client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .is_err()
}
