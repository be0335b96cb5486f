//! What both test binaries of the `natask` command need: a bound on every
//! awaited event, a client of the test server, and a worker serving in the
//! background.

use std::future::Future;
use std::time::Duration;

use natask_runtime::Client;
use natask_testing::NatsServer;
use tokio::sync::oneshot;

/// How long any single expected event may take before a test fails.
pub(crate) const EVENT_DEADLINE: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test after [`EVENT_DEADLINE`].
pub(crate) async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(EVENT_DEADLINE, fut)
        .await
        .expect("expected event did not happen in time")
}

/// A client of the test server.
pub(crate) async fn connect(server: &NatsServer) -> Client {
    Client::connect(&server.url())
        .await
        .expect("connect to the test server")
}

/// A worker serving in the background until stopped.
pub(crate) struct Worker {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), natask_runtime::RunError>>,
}

impl Worker {
    pub(crate) async fn start(builder: natask_runtime::RuntimeBuilder) -> Worker {
        let runtime = builder.build().await.expect("runtime builds");
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(runtime.run_until(async {
            let _ = stopped.await;
        }));
        Worker { stop, done }
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        within(self.done)
            .await
            .expect("worker task")
            .expect("worker ran cleanly");
    }
}
