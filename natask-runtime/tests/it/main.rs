//! Integration tests, each against its own real nats-server process.
//!
//! Every test serves only its own queues (`.queues([...])`), because the
//! tasks of all modules are linked into this one binary.

mod auth;
mod batch;
mod build;
mod cluster;
mod cron;
mod delivery;
mod enqueue;
mod events;
mod evolution;
mod failures;
mod fleet;
mod hostile;
mod lifecycle;
mod observe;
mod pause;
mod permissions;
mod poison;
mod policy;
mod queues;
mod roles;
mod schedule;
mod schedules;
mod shutdown;
mod signing;
mod unique;

use std::future::Future;
use std::time::Duration;

use natask_runtime::{BuildError, Client, Runtime, RuntimeBuilder};
use natask_testing::NatsServer;
use tokio::sync::{mpsc, oneshot};

/// How long any single expected event may take before a test fails.
pub(crate) const EVENT_DEADLINE: Duration = Duration::from_secs(20);

pub(crate) async fn connect(server: &NatsServer) -> Client {
    Client::connect(&server.url())
        .await
        .expect("connect to the test server")
}

/// A runtime serving in the background, stopped (gracefully) on drop of the
/// handle or by [`Running::stop`].
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), natask_runtime::RunError>>,
}

impl Running {
    pub(crate) async fn start(builder: RuntimeBuilder) -> Running {
        Self::try_start(builder).await.expect("runtime builds")
    }

    pub(crate) async fn try_start(builder: RuntimeBuilder) -> Result<Running, BuildError> {
        let runtime = builder.build().await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(runtime.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Running {
            stop: Some(stop),
            done,
        })
    }

    /// Signals shutdown and waits until `run_until` has returned.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
        within(&mut self.done)
            .await
            .expect("runtime task")
            .expect("runtime ran cleanly");
    }
}

pub(crate) fn builder(client: &Client, queues: &[&str]) -> RuntimeBuilder {
    Runtime::builder(client.clone()).queues(queues.iter().copied())
}

/// Awaits `fut`, failing the test after [`EVENT_DEADLINE`].
pub(crate) async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(EVENT_DEADLINE, fut)
        .await
        .expect("expected event did not happen in time")
}

/// The error and all its sources, as one text.
pub(crate) fn whole(err: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut next = Some(err);
    while let Some(err) = next {
        text.push_str(&format!("{err}\n"));
        next = err.source();
    }
    text
}

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it answers `Ok` and returns that value, failing the
/// test after [`EVENT_DEADLINE`] with `what` and the last `Err` it saw. For
/// what can only be read, not awaited (stream counts, readiness, stored
/// states); whatever sends an event is awaited with [`within`] instead.
pub(crate) async fn eventually<T, E, Fut>(what: &str, mut check: impl FnMut() -> Fut) -> T
where
    E: std::fmt::Debug,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen in time; last seen: {last:?}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until nothing is left in the queue's stream: no waiting schedule
/// and no unacknowledged task (a finished task leaves a work-queue
/// stream), so nothing can fire or run again.
pub(crate) async fn drained(client: &Client, queue: &str) {
    eventually(&format!("queue `{queue}` draining"), || async {
        match queued(client, queue).await {
            0 => Ok(()),
            n => Err(format!("{n} messages stored")),
        }
    })
    .await;
}

/// Publishes `body` with `headers` to `subject`, as a hand-written
/// producer would, and waits until JetStream stored it.
pub(crate) async fn publish_raw(
    client: &Client,
    subject: &str,
    headers: &[(&str, &str)],
    body: impl Into<bytes::Bytes>,
) {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, *value);
    }
    client
        .jetstream()
        .publish_with_headers(subject.to_owned(), map, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// The value of header `name` of a message (e.g. a dead letter seen on
/// its subject); empty when it has none.
pub(crate) fn header(msg: &async_nats::Message, name: &str) -> String {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

/// Receives `n` values.
pub(crate) async fn recv_n<T>(rx: &mut mpsc::UnboundedReceiver<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(within(rx.recv()).await.expect("sender alive"));
    }
    out
}

/// Messages still stored in a queue's stream.
pub(crate) async fn queued(client: &Client, queue: &str) -> u64 {
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .expect("queue stream exists");
    stream.get_info().await.expect("stream info").state.messages
}

/// A real nats-server of an older version, from the binary the variable
/// `env` names (`scripts/dev test` installs them into `target/`); `None`,
/// after printing "skipped", when it is not set in a bare `cargo test`.
/// Where `CI` is set, a missing binary fails the test: CI must run every
/// compatibility test.
pub(crate) fn older_server(env: &str) -> Option<NatsServer> {
    let bin = std::env::var_os(env).filter(|bin| std::path::Path::new(bin).is_file());
    let Some(bin) = bin else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{env} does not name a nats-server binary, and CI is set: CI runs every \
             compatibility test (`scripts/dev test` installs the older servers)"
        );
        eprintln!("skipped: {env} is not set");
        return None;
    };
    Some(NatsServer::start_binary(bin, &[]))
}

/// Log lines of the current thread, captured by a thread-local subscriber
/// (a test's runtime is single-threaded, so that is every task it spawns).
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures this thread's log lines at `level` and above until the
    /// guard is dropped.
    pub(crate) fn start(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The captured lines containing `text`.
    pub(crate) fn lines_with(&self, text: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_owned)
            .collect()
    }
}
