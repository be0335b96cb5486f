//! The live catalog and the worker registry: what a running runtime
//! publishes about its tasks and itself, and its leaving when it stops.
//! (A runtime that dies drops out by its TTL: `natask-fault-tests`.)

use std::sync::Arc;
use std::time::Duration;

use natask_runtime::{task, State, TaskError};
use tokio::sync::{mpsc, Semaphore};

use crate::{builder, connect, eventually, recv_n, within, Running};

pub(crate) struct Gate {
    started: mpsc::UnboundedSender<u32>,
    open: Arc<Semaphore>,
}

/// Sends a welcome mail.
#[task(
    queue = "it_fleet",
    retries = 2,
    timeout = "30s",
    backoff = "fixed(5s)"
)]
async fn fleet_mail(
    gate: State<Gate>,
    /// Who gets it.
    to: String,
    count: u8,
    cc: Option<Vec<String>>,
) -> Result<(), TaskError> {
    let _ = (to, cc);
    let _ = gate.started.send(u32::from(count));
    gate.open.acquire().await.expect("gate open").forget();
    Ok(())
}

#[task(queue = "it_fleet", unique = "1m", unique_until = "started")]
async fn fleet_digest() -> Result<(), TaskError> {
    Ok(())
}

#[task(queue = "it_fleet", cron = "@hourly")]
async fn fleet_tick() -> Result<(), TaskError> {
    Ok(())
}

#[tokio::test]
async fn a_running_runtime_publishes_its_tasks_and_itself_and_leaves_when_it_stops() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    assert!(client.workers().await.unwrap().is_empty());

    let (started, mut started_rx) = mpsc::unbounded_channel();
    let open = Arc::new(Semaphore::new(0));
    let gate = Gate {
        started,
        open: Arc::clone(&open),
    };
    let running = Running::start(
        builder(&client, &["it_fleet"])
            .state(gate)
            .concurrency(3)
            .heartbeat(Duration::from_secs(1)),
    )
    .await;
    FleetMail::new("ada@example.com".into(), 7, None)
        .enqueue(&client)
        .await
        .unwrap();
    assert_eq!(recv_n(&mut started_rx, 1).await, [7]);

    // The registry: this process, its queue, one handler running.
    let me = eventually("the registry shows the task in flight", || async {
        let workers = client.workers().await.map_err(|e| e.to_string())?;
        match workers.as_slice() {
            [w] if w.queues.first().is_some_and(|q| q.in_flight == 1) => Ok(w.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(me.pid, std::process::id());
    assert_eq!(me.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(me.heartbeat_ms, 1000);
    assert!(!me.host.is_empty());
    let [queue] = me.queues.as_slice() else {
        panic!("{me:?}")
    };
    assert_eq!(queue.queue, "it_fleet");
    assert_eq!(queue.concurrency, 3);
    assert_eq!(queue.tasks, ["fleet_digest", "fleet_mail", "fleet_tick"]);

    // The catalog: each task as the runtime applies it, with its schema.
    let catalog = client.catalog().await.unwrap();
    let tasks: Vec<_> = catalog.iter().map(|e| e.task.as_str()).collect();
    assert_eq!(tasks, ["fleet_digest", "fleet_mail", "fleet_tick"]);
    let (digest, mail, tick) = (&catalog[0], &catalog[1], &catalog[2]);
    assert_eq!(mail.queue, "it_fleet");
    assert_eq!(mail.retries, 2);
    assert_eq!(mail.timeout_ms, 30_000);
    assert_eq!(mail.backoff, "fixed(5s)");
    assert_eq!(mail.worker, me.id);
    assert!(mail.defined_at.contains("fleet.rs"), "{}", mail.defined_at);
    assert_eq!(
        mail.schema,
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "fleet_mail",
            "type": "object",
            "properties": {
                "to": { "type": "string", "description": "Who gets it." },
                "count": { "type": "integer", "minimum": 0, "maximum": 255 },
                "cc": { "anyOf": [
                    { "type": "array", "items": { "type": "string" } },
                    { "type": "null" }
                ] }
            },
            "required": ["to", "count"]
        })
    );
    assert_eq!(tick.cron.as_deref(), Some("@hourly"));
    assert_eq!(digest.cron, None);
    let unique = digest.unique.as_ref().expect("unique");
    assert_eq!(
        (unique.ttl_secs, unique.until.as_deref()),
        (60, Some("started"))
    );
    assert_eq!(digest.schema["type"], "null");
    assert_eq!(digest.backoff, "exponential(1s, x2, max 5m)");

    open.add_permits(1);
    // Counted as finished at a later heartbeat, with a rate beside it.
    let after = eventually("the registry counts the finished task", || async {
        let workers = client.workers().await.map_err(|e| e.to_string())?;
        match workers.first().and_then(|w| w.queues.first()) {
            Some(q) if q.finished == 1 && q.in_flight == 0 => Ok(q.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(after.finished_per_sec >= 0.0, "{after:?}");
    running.stop().await;
    // Stopped gracefully: gone at once, not after its TTL.
    assert!(within(client.workers()).await.unwrap().is_empty());
    // The catalog outlives the runtime.
    assert_eq!(client.catalog().await.unwrap().len(), 3);
}
