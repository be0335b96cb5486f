//! A JetStream cluster of three real servers: URL lists, replicas for
//! everything natask creates, and provisioning under concurrent first use.
//! (Failover under load is in `natask-fault-tests`.)

use natask_runtime::{task, Client, QueuePolicy, State, TaskError};
use natask_testing::{NatsCluster, NatsServer};
use tokio::sync::mpsc;

use crate::{builder, recv_n, Running};

const QUEUE: &str = "it_cluster";

struct Seen(mpsc::UnboundedSender<u32>);

#[task(queue = "it_cluster")]
async fn clustered(seen: State<Seen>, n: u32) -> Result<(), TaskError> {
    let _ = seen.0.send(n);
    Ok(())
}

/// The replicas of every stream natask made for `QUEUE`, by name.
async fn replicas(client: &Client) -> Vec<(String, usize)> {
    let names = client.names();
    let streams = [
        names.queue_stream(QUEUE),
        names.dead_letter_stream(),
        format!("KV_{}", names.task_bucket()),
        format!("KV_{}", names.handback_bucket()),
    ];
    let mut found = Vec::new();
    for name in streams {
        let stream = client.jetstream().get_stream(&name).await.unwrap();
        found.push((name, stream.cached_info().config.num_replicas));
    }
    found
}

async fn serve_and_run(client: &Client, tasks: u32) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(client, &[QUEUE]).state(Seen(tx))).await;
    for n in 0..tasks {
        Clustered { n }.enqueue(client).await.unwrap();
    }
    let mut seen = recv_n(&mut rx, tasks as usize).await;
    seen.sort_unstable();
    assert_eq!(seen, (0..tasks).collect::<Vec<_>>());
    running.stop().await;
}

#[tokio::test]
async fn on_a_cluster_a_url_list_connects_and_everything_natask_creates_is_r3_by_default() {
    let cluster = NatsCluster::start(3);
    let client = Client::connect(&cluster.urls()).await.unwrap();
    assert_eq!(client.replicas(), 3, "3 servers advertised: R3");
    serve_and_run(&client, 10).await;
    for (stream, replicas) in replicas(&client).await {
        assert_eq!(replicas, 3, "stream `{stream}`");
    }
    assert!(client.shared_drift().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_client_sets_replicas_for_shared_streams_and_a_policy_for_its_queue() {
    let cluster = NatsCluster::start(3);
    let one = Client::connect(&cluster.urls())
        .await
        .unwrap()
        .with_replicas(1)
        .unwrap()
        .with_queue(QueuePolicy::new(QUEUE).replicas(3))
        .unwrap();
    serve_and_run(&one, 3).await;
    let found = replicas(&one).await;
    assert_eq!(found[0].1, 3, "the queue's policy wins for its stream");
    assert!(found[1..].iter().all(|(_, r)| *r == 1), "{found:?}");

    // a default client sees the shared streams at R1 and can move them to R3
    let default = Client::connect(&cluster.urls()).await.unwrap();
    let drift = default.shared_drift().await.unwrap();
    let drifted: Vec<_> = drift
        .iter()
        .map(|(stream, d)| (stream.as_str(), d.field, d.live.as_str(), d.wanted.as_str()))
        .collect();
    assert!(
        drifted.contains(&("NATASK_DLQ", "replicas", "1", "3")),
        "{drifted:?}"
    );
    assert!(
        drifted.contains(&("KV_NATASK_TASKS", "replicas", "1", "3")),
        "{drifted:?}"
    );
    assert_eq!(
        default.update_shared_streams().await.unwrap().len(),
        drift.len()
    );
    assert!(default.shared_drift().await.unwrap().is_empty());
    assert!(replicas(&default).await[1..].iter().all(|(_, r)| *r == 3));
}

#[tokio::test]
async fn concurrent_first_enqueues_on_a_fresh_cluster_all_succeed() {
    let cluster = NatsCluster::start(3);
    let client = Client::connect(&cluster.urls()).await.unwrap();
    let enqueues = (0..16).map(|n| {
        let client = client.clone();
        tokio::spawn(async move { Clustered { n }.enqueue(&client).await })
    });
    for result in futures_util::future::join_all(enqueues).await {
        result.unwrap().expect("every first enqueue is stored");
    }
    assert_eq!(crate::queued(&client, QUEUE).await, 16);
}

#[tokio::test]
async fn a_url_list_skips_a_server_that_is_down_and_a_single_server_means_r1() {
    let server = NatsServer::start();
    let mut gone = NatsServer::start();
    let dead_url = gone.url();
    gone.kill();
    let urls = format!("{dead_url}, {}", server.url());
    let client = Client::connect(&urls).await.unwrap();
    assert_eq!(client.replicas(), 1, "one server: R1");
    assert_eq!(
        client
            .clone()
            .with_replicas(6)
            .map(drop)
            .unwrap_err()
            .to_string(),
        "replicas must be between 1 and 5 (JetStream's limit), got 6"
    );
}

/// The server leading `stream`.
async fn leader(client: &Client, stream: &str) -> String {
    let mut stream = client.jetstream().get_stream(stream).await.unwrap();
    let info = stream.info().await.unwrap();
    info.cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("a leader")
}

#[tokio::test]
async fn killing_the_queue_leader_mid_enqueue_costs_no_error_and_no_duplicate() {
    const TASKS: u32 = 1_500;
    let mut cluster = NatsCluster::start(3);
    let client = Client::connect(&cluster.urls()).await.unwrap();
    Clustered { n: 0 }.enqueue(&client).await.unwrap();
    let (progress, mut enqueued) = tokio::sync::watch::channel(1u32);
    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut ids = vec![];
            let mut slowest = std::time::Duration::ZERO;
            for n in 1..TASKS {
                let started = std::time::Instant::now();
                let result = (Clustered { n }).enqueue(&client).await;
                slowest = slowest.max(started.elapsed());
                match result {
                    Ok(e) => ids.push(e.id),
                    Err(e) => panic!("enqueue {n} failed: {e}"),
                }
                let _ = progress.send(n);
            }
            eprintln!("the slowest enqueue across the failover took {slowest:?}");
            ids
        })
    };
    crate::within(enqueued.wait_for(|n| *n >= TASKS / 3))
        .await
        .unwrap();
    let stream = client.names().queue_stream(QUEUE);
    let led_by = leader(&client, &stream).await;
    cluster.server(&led_by).kill();
    let ids = crate::within(producer).await.unwrap();
    cluster.server(&led_by).restart();
    assert_eq!(ids.len() as u32, TASKS - 1);
    assert_eq!(
        crate::queued(&client, QUEUE).await,
        u64::from(TASKS),
        "each task stored once"
    );
    assert_ne!(leader(&client, &stream).await, "", "a new leader");
    // every stored task's state is recorded, if need be after the enqueue
    for id in ids {
        let info = crate::eventually("the task's state recorded", || async {
            match client.task_info(id).await {
                Ok(Some(info)) => Ok(info),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(info.state, natask_runtime::TaskState::Queued);
    }
}

#[tokio::test]
async fn a_fresh_worker_starts_and_runs_while_the_state_bucket_elects_a_leader() {
    let mut cluster = NatsCluster::start(3);
    let first = Client::connect(&cluster.urls()).await.unwrap();
    serve_and_run(&first, 1).await;
    let bucket = format!("KV_{}", first.names().task_bucket());
    let led_by = leader(&first, &bucket).await;
    cluster.server(&led_by).kill();
    // a new process: a new connection, provisioning from scratch
    let fresh = Client::connect(&cluster.urls()).await.unwrap();
    serve_and_run(&fresh, 5).await;
    cluster.server(&led_by).restart();
}
