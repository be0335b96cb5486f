//! Failed attempts: retries, fatal errors, panics and timeouts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use natask_runtime::{task, Backoff, State, TaskContext, TaskError};
use tokio::sync::mpsc;

use crate::{builder, connect, queued, within, Running};

pub(crate) struct Attempts(mpsc::UnboundedSender<(String, u32)>);

#[derive(Debug)]
struct Flaky;
impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream said 503")
    }
}
impl std::error::Error for Flaky {}

#[task(queue = "it_failures", retries = 2)]
async fn always_fails(
    seen: State<Attempts>,
    ctx: &TaskContext,
    label: String,
) -> Result<(), Flaky> {
    let _ = seen.0.send((label, ctx.attempt()));
    Err(Flaky)
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(queue = "it_failures", retries = 5)]
async fn fails_twice(seen: State<Attempts>, ctx: &TaskContext) -> Result<u32, TaskError> {
    let _ = seen.0.send(("fails_twice".into(), ctx.attempt()));
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(TaskError::retry("not yet"));
    }
    Ok(ctx.attempt())
}

#[task(queue = "it_failures", retries = 5)]
async fn gives_up(seen: State<Attempts>, ctx: &TaskContext) -> Result<(), TaskError> {
    let _ = seen.0.send(("gives_up".into(), ctx.attempt()));
    Err(TaskError::fatal("the account is closed"))
}

#[task(queue = "it_failures", retries = 0)]
async fn panics(seen: State<Attempts>, ctx: &TaskContext) {
    let _ = seen.0.send(("panics".into(), ctx.attempt()));
    panic!("index out of bounds: the len is 0");
}

#[task(queue = "it_failures", retries = 0, timeout = "200ms")]
async fn hangs(seen: State<Attempts>, ctx: &TaskContext) -> Result<(), TaskError> {
    let _ = seen.0.send(("hangs".into(), ctx.attempt()));
    std::future::pending::<()>().await;
    Ok(())
}

fn header(m: &async_nats::Message, n: &str) -> String {
    m.headers
        .as_ref()
        .and_then(|h| h.get(n))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn failures_retry_then_land_in_the_dead_letters_with_their_last_error() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_failures"])
            .state(Attempts(tx))
            .default_backoff(Backoff::exponential(
                Duration::from_millis(50),
                2.0,
                Duration::from_millis(200),
            )),
    )
    .await;

    let always = AlwaysFails::new("x".into())
        .enqueue(&client)
        .await
        .unwrap()
        .id;
    let letter = within(dead.next()).await.unwrap();
    assert_eq!(header(&letter, "Natask-Id"), always.to_string());
    assert_eq!(header(&letter, "Natask-Reason"), "exhausted");
    assert_eq!(
        header(&letter, "Natask-Attempts"),
        "3",
        "retries = 2 means 3 attempts"
    );
    assert_eq!(header(&letter, "Natask-Error"), "upstream said 503");
    let mut attempts = Vec::new();
    while let Ok(seen) = rx.try_recv() {
        attempts.push(seen);
    }
    assert_eq!(
        attempts,
        [
            ("x".to_owned(), 1),
            ("x".to_owned(), 2),
            ("x".to_owned(), 3)
        ]
    );

    FailsTwice.enqueue(&client).await.unwrap();
    let seen: Vec<_> = [
        within(rx.recv()).await,
        within(rx.recv()).await,
        within(rx.recv()).await,
    ]
    .into_iter()
    .map(|s| s.unwrap().1)
    .collect();
    assert_eq!(seen, [1, 2, 3], "succeeded on attempt 3");

    let fatal = GivesUp.enqueue(&client).await.unwrap().id;
    let letter = within(dead.next()).await.unwrap();
    assert_eq!(header(&letter, "Natask-Id"), fatal.to_string());
    assert_eq!(
        (
            header(&letter, "Natask-Reason").as_str(),
            header(&letter, "Natask-Attempts").as_str()
        ),
        ("fatal", "1")
    );
    assert_eq!(header(&letter, "Natask-Error"), "the account is closed");

    Panics.enqueue(&client).await.unwrap();
    let letter = within(dead.next()).await.unwrap();
    assert_eq!(
        header(&letter, "Natask-Error"),
        "handler panicked: index out of bounds: the len is 0"
    );

    Hangs.enqueue(&client).await.unwrap();
    let letter = within(dead.next()).await.unwrap();
    assert_eq!(
        header(&letter, "Natask-Error"),
        "handler timed out after 200ms"
    );

    // the worker still serves after a panic and a timeout
    FailsTwice.enqueue(&client).await.unwrap();
    let mut last = None;
    while last != Some(("fails_twice".to_owned(), 1)) {
        last = within(rx.recv()).await;
    }
    running.stop().await;
    assert_eq!(queued(&client, "it_failures").await, 0);
}
