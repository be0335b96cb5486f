//! Enqueueing many tasks at once, with many publishes in flight.

use futures_util::{stream, StreamExt};

use natask_core::{Task, TaskId};

use crate::client::{Client, EnqueueError};

/// Enqueues whose acknowledgement `enqueue_many` awaits at once. JetStream
/// acknowledges a stream's publishes in order; more than this gains little
/// on loopback and only queues up in the server.
const IN_FLIGHT: usize = 256;

impl Client {
    /// Enqueues every task of `tasks` with up to 256 publishes in flight,
    /// instead of waiting for each acknowledgement in turn, and returns one
    /// result per task, in order: its id once JetStream has stored it, or
    /// why it was not.
    ///
    /// Each task goes through [`enqueue`](Client::enqueue) (same headers,
    /// middleware, checks and timeout) and succeeds or fails on its own: a
    /// failed task does not stop the others. For bulk work this is many
    /// times faster than awaiting `enqueue` in a loop (see `BENCHMARKS.md`).
    /// While NATS is unreachable every task fails with
    /// [`EnqueueError::Timeout`] after the client's timeout, 256 at a time.
    ///
    /// ```no_run
    /// use natask_runtime::{task, Client, TaskError};
    ///
    /// #[task(queue = "thumbnails")]
    /// async fn thumbnail(image: u64) -> Result<(), TaskError> {
    ///     Ok(())
    /// }
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::connect("nats://127.0.0.1:4222").await?;
    /// let results = client.enqueue_many((0..10_000).map(Thumbnail::new)).await;
    /// for (image, result) in results.iter().enumerate() {
    ///     match result {
    ///         Ok(id) => println!("image {image} is task {id}"),
    ///         Err(e) => eprintln!("image {image} was not enqueued: {e}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Vec<Result<TaskId, EnqueueError>> {
        let tasks = tasks.into_iter();
        let mut results = Vec::with_capacity(tasks.size_hint().0);
        // `buffered` keeps the results in input order while up to
        // IN_FLIGHT enqueues wait for their acknowledgements.
        let mut enqueued = stream::iter(tasks)
            .map(|task| async move { self.enqueue(&task).await })
            .buffered(IN_FLIGHT);
        while let Some(result) = enqueued.next().await {
            results.push(result);
        }
        results
    }
}
