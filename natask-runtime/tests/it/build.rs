//! Injection, and what `build()` and `connect()` refuse.

use std::time::Duration;

use natask_runtime::{task, BuildError, Client, Runtime, State, TaskContext, TaskError};
use tokio::sync::mpsc;

use crate::{builder, connect, within, Running};

pub(crate) struct Greeting(&'static str);
pub(crate) struct Observed(mpsc::UnboundedSender<String>);

#[task(
    queue = "it_inject",
    name = "inject_probe",
    retries = 7,
    timeout = "1m"
)]
async fn inject(
    greeting: State<Greeting>,
    out: State<Observed>,
    ctx: &TaskContext,
    who: String,
) -> Result<(), TaskError> {
    let line = format!(
        "{} {who} id={} task={} queue={} attempt={}/{} header={} enqueued={}",
        greeting.0,
        ctx.id(),
        ctx.task_name(),
        ctx.queue(),
        ctx.attempt(),
        ctx.max_attempts(),
        // natask's own headers are the accessors' business.
        ctx.headers().get("natask-task").unwrap_or("-"),
        ctx.enqueued_at().is_some(),
    );
    let _ = out.0.send(line);
    Ok(())
}

#[tokio::test]
async fn state_and_context_are_injected() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_inject"])
            .state(Greeting("hello"))
            .state(Observed(tx)),
    )
    .await;
    let id = Inject::new("ada".into()).enqueue(&client).await.unwrap().id;
    let line = within(rx.recv()).await.unwrap();
    running.stop().await;
    assert_eq!(
        line,
        format!("hello ada id={id} task=inject_probe queue=it_inject attempt=1/8 header=- enqueued=true")
    );
}

#[tokio::test]
async fn missing_state_names_the_task_and_the_type() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let err = builder(&client, &["it_inject"])
        .state(Greeting("hi"))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::MissingState {
                task: "inject_probe",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "task `inject_probe` needs `State<it::build::Observed>`, but no value of that type was registered; \
         add `.state(value)` with a `it::build::Observed` to the runtime builder"
    );
}

#[tokio::test]
async fn an_unknown_queue_or_an_empty_registry_explains_the_linker_fix() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let err = builder(&client, &["it_nope"]).build().await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("queue `it_nope` was asked for, but no registered task uses it (registered queues: `it_alpha`"), "{text}");
    assert!(text.contains("add `use your_tasks_crate as _;`"), "{text}");

    let err = Runtime::builder(client.clone())
        .only_registered()
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoTasks));
    assert!(
        err.to_string().contains("`.register::<YourTask>()`"),
        "{err}"
    );

    // the explicit path works without the link-time registry
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        Runtime::builder(client.clone())
            .only_registered()
            .register::<Inject>()
            .register::<Inject>()
            .state(Greeting("hey"))
            .state(Observed(tx)),
    )
    .await;
    Inject::new("bob".into()).enqueue(&client).await.unwrap();
    assert!(within(rx.recv()).await.unwrap().starts_with("hey bob "));
    running.stop().await;
}

#[tokio::test]
async fn zero_concurrency_is_refused() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let err = builder(&client, &["it_inject"])
        .concurrency(0)
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid runtime setting: concurrency must be at least 1"
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_password() {
    let server = natask_testing::NatsServer::start_with(&["--user", "natask", "--pass", "s3cret"]);
    let url = format!("nats://natask:nope@127.0.0.1:{}", server.port());
    let err = Client::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        format!(
            "could not connect to NATS at `nats://natask:***@127.0.0.1:{}`; check the URLs, that nats-server is running, and the credentials",
            server.port()
        )
    );
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("authorization"), "{source}");

    let ok = Client::connect(&format!("nats://natask:s3cret@127.0.0.1:{}", server.port())).await;
    ok.expect("the right password connects");
}

#[tokio::test]
async fn a_wrong_token_or_percent_encoded_password_never_reaches_the_error() {
    let server = natask_testing::NatsServer::start_with(&["--auth", "right-token"]);
    let url = format!("nats://WRONG-token@127.0.0.1:{}", server.port());
    let text = Client::connect(&url).await.unwrap_err().to_string();
    assert!(!text.contains("WRONG"), "{text}");
    assert!(text.contains("`nats://***@127.0.0.1:"), "{text}");
    let right = format!("nats://right-token@127.0.0.1:{}", server.port());
    Client::connect(&right)
        .await
        .expect("the right token connects");

    // a password with `@` and `:` in it, percent-encoded in the URL
    let server = natask_testing::NatsServer::start_with(&["--user", "natask", "--pass", "p@ss:w"]);
    let url = format!("nats://natask:p%40ss%3Aw@127.0.0.1:{}", server.port());
    Client::connect(&url)
        .await
        .expect("the decoded password connects");
}

#[tokio::test]
async fn nothing_listening_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        Client::connect(&format!("nats://127.0.0.1:{port}")),
    )
    .await
    .expect("connect gives up by itself")
    .unwrap_err();
    assert!(err.to_string().starts_with(&format!(
        "could not connect to NATS at `nats://127.0.0.1:{port}`"
    )));
}
