//! Middleware, health, the HTTP endpoint, metrics and trace propagation.

use std::sync::{Arc, Mutex};

use natask_runtime::middleware::{Enqueue, Middleware, Next, Rejected};
use natask_runtime::{task, EnqueueError, HandlerFuture, State, TaskContext, TaskError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::{builder, connect, within, Running};

type Log = Arc<Mutex<Vec<String>>>;

struct Recorder {
    name: &'static str,
    log: Log,
}

impl Middleware for Recorder {
    fn on_enqueue(&self, task: &mut Enqueue<'_>) -> Result<(), Rejected> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} enqueue {}", self.name, task.task()));
        task.headers_mut()
            .insert(format!("X-{}", self.name).as_str(), "seen");
        Ok(())
    }

    fn around<'a>(&'a self, ctx: &'a TaskContext, next: Next<'a>) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} before {}", self.name, ctx.task_name()));
            let result = next.run().await;
            self.log
                .lock()
                .unwrap()
                .push(format!("{} after ok={}", self.name, result.is_ok()));
            result
        })
    }
}

struct NoEmptyPayloads;

impl Middleware for NoEmptyPayloads {
    fn on_enqueue(&self, task: &mut Enqueue<'_>) -> Result<(), Rejected> {
        if task.payload() == b"{\"text\":\"\"}" {
            return Err(Rejected("empty text is not allowed".into()));
        }
        Ok(())
    }
}

pub(crate) struct Said(Log, mpsc::UnboundedSender<()>);

#[task(queue = "it_middleware")]
async fn say(said: State<Said>, ctx: &TaskContext, text: String) -> Result<(), TaskError> {
    let headers = format!(
        "{} {}",
        ctx.headers().get("X-outer").unwrap_or("-"),
        ctx.headers().get("X-inner").unwrap_or("-")
    );
    said.0
        .lock()
        .unwrap()
        .push(format!("handler {text} headers={headers}"));
    let _ = said.1.send(());
    Ok(())
}

#[tokio::test]
async fn middleware_runs_in_order_around_enqueue_and_processing_and_can_refuse() {
    let server = natask_testing::NatsServer::start();
    let log: Log = Arc::default();
    let client = connect(&server)
        .await
        .with_middleware(Recorder {
            name: "outer",
            log: log.clone(),
        })
        .with_middleware(Recorder {
            name: "inner",
            log: log.clone(),
        })
        .with_middleware(NoEmptyPayloads);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_middleware"])
            .state(Said(log.clone(), tx))
            .middleware(Recorder {
                name: "outer",
                log: log.clone(),
            })
            .middleware(Recorder {
                name: "inner",
                log: log.clone(),
            }),
    )
    .await;
    let err = Say::new(String::new()).enqueue(&client).await.unwrap_err();
    assert!(matches!(err, EnqueueError::Rejected { task: "say", .. }));
    assert_eq!(
        err.to_string(),
        "task `say` was refused by a middleware: empty text is not allowed"
    );
    log.lock().unwrap().clear();

    Say::new("hi".into()).enqueue(&client).await.unwrap();
    within(rx.recv()).await.unwrap();
    running.stop().await;
    assert_eq!(
        *log.lock().unwrap(),
        [
            "outer enqueue say",
            "inner enqueue say",
            "outer before say",
            "inner before say",
            "handler hi headers=seen seen",
            "inner after ok=true",
            "outer after ok=true",
        ]
    );
}

pub(crate) async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    within(stream.read_to_string(&mut response)).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub(crate) struct Tick(mpsc::UnboundedSender<()>);

#[task(queue = "it_observe", retries = 1)]
async fn observed(tick: State<Tick>, fail: bool) -> Result<(), TaskError> {
    let _ = tick.0.send(());
    if fail {
        return Err(TaskError::retry("observed failure"));
    }
    Ok(())
}

#[tokio::test]
async fn health_and_readiness_are_served_over_http_and_follow_the_connection() {
    let mut server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    assert!(client.is_ready());
    let (tx, _rx) = mpsc::unbounded_channel();
    let runtime = builder(&client, &["it_observe"])
        .state(Tick(tx))
        .http("127.0.0.1:0".parse().unwrap())
        .build()
        .await
        .unwrap();
    assert!(runtime.is_ready().await);
    let addr = runtime.http_addr().unwrap();
    let health = runtime.health();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(runtime.run_until(async {
        let _ = stopped.await;
    }));
    assert_eq!(http_get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(http_get(addr, "/readyz").await, (200, "ready\n".to_owned()));
    assert_eq!(http_get(addr, "/nope").await.0, 404);

    server.kill();
    crate::eventually("readiness ending without a server", || async {
        health.check().await.err().ok_or("still ready")
    })
    .await;
    let (status, body) = http_get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.starts_with("not ready: "), "{body}");
    assert!(!client.is_ready());
    let _ = stop.send(());
    within(done).await.unwrap().unwrap();
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn metrics_are_scraped_over_http_with_the_right_counts() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runtime = builder(&client, &["it_observe"])
        .state(Tick(tx))
        .default_backoff(natask_runtime::Backoff::fixed(
            std::time::Duration::from_millis(10),
        ))
        .http("127.0.0.1:0".parse().unwrap())
        .build()
        .await
        .unwrap();
    let addr = runtime.http_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(runtime.run_until(async {
        let _ = stopped.await;
    }));
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    for _ in 0..3 {
        Observed::new(false).enqueue(&client).await.unwrap();
    }
    Observed::new(true).enqueue(&client).await.unwrap();
    crate::recv_n(&mut rx, 5).await; // 3 successes, 2 attempts of the failing one
    futures_util::StreamExt::next(&mut dead).await.unwrap();
    // the dead letter is visible to subscribers a moment before the worker
    // counts it: scrape until the count is there
    let (status, body) = crate::eventually("the dead letter being counted", || async {
        let (status, body) = http_get(addr, "/metrics").await;
        // (metrics are process-wide: other tests dead-letter on other queues)
        if body.contains(r#"natask_tasks_dead_lettered_total{queue="it_observe""#) {
            Ok((status, body))
        } else {
            Err(body)
        }
    })
    .await;
    let _ = stop.send(());
    within(done).await.unwrap().unwrap();
    assert_eq!(status, 200);
    let value = |name: &str, labels: &str| -> f64 {
        let prefix = format!("{name}{{{labels}}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in\n{body}"))
            .parse()
            .unwrap()
    };
    let labels = r#"queue="it_observe",task="observed""#;
    assert_eq!(value("natask_tasks_enqueued_total", labels), 4.0);
    assert_eq!(value("natask_tasks_started_total", labels), 5.0);
    assert_eq!(value("natask_tasks_succeeded_total", labels), 3.0);
    assert_eq!(value("natask_tasks_failed_total", labels), 2.0);
    assert_eq!(value("natask_tasks_retried_total", labels), 1.0);
    assert_eq!(
        value(
            "natask_tasks_dead_lettered_total",
            r#"queue="it_observe",task="observed",reason="exhausted""#
        ),
        1.0
    );
    assert_eq!(value("natask_tasks_in_flight", labels), 0.0);
    assert_eq!(value("natask_task_duration_seconds_count", labels), 5.0);
    assert_eq!(value("natask_queue_pending", r#"queue="it_observe""#), 0.0);
}
