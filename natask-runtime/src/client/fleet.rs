//! What the runtimes serve and who they are: the live catalog
//! ([`Client::catalog`]) and the worker registry ([`Client::workers`]),
//! read from the buckets every runtime writes (`store::fleet`).

use super::Client;
use crate::store::fleet::{CatalogEntry, Fleet, FleetError, WorkerInfo};

impl Client {
    /// Every task some runtime under this client's prefix serves or served
    /// within the last 7 days, by queue then task: its queue, retries,
    /// timeout, backoff, cron schedule, uniqueness and the JSON Schema of
    /// its payload. Runtimes write their tasks when they start.
    ///
    /// ```no_run
    /// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// for entry in client.catalog().await? {
    ///     println!("{}.{}: {}", entry.queue, entry.task, entry.schema);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn catalog(&self) -> Result<Vec<CatalogEntry>, FleetError> {
        self.fleet().catalog().await
    }

    /// Every running runtime under this client's prefix, oldest first: host,
    /// pid, version, and per queue its concurrency and the tasks in flight
    /// at its latest heartbeat. A runtime that stops gracefully leaves at
    /// once; one that dies drops out three heartbeats after its last
    /// ([`RuntimeBuilder::heartbeat`](crate::RuntimeBuilder::heartbeat)).
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, FleetError> {
        self.fleet().workers().await
    }

    pub(crate) fn fleet(&self) -> Fleet<'_> {
        Fleet {
            provisioner: self.provisioner(),
        }
    }
}
