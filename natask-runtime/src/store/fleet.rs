//! The live catalog and the worker registry, two key-value buckets every
//! runtime writes and every tool reads, so that the CLI, the dashboard and
//! your own code see the same truth:
//!
//! - `<PREFIX>_CATALOG`, key `<queue>.<task>`: a [`CatalogEntry`] per task
//!   some runtime serves (queue, retries, timeout, backoff, cron,
//!   uniqueness, the payload's JSON Schema), written when a runtime starts
//!   and refreshed while it runs;
//! - `<PREFIX>_WORKERS`, key: the runtime's id: a [`WorkerInfo`] (host, pid,
//!   version, queues, concurrency, tasks in flight), written on every
//!   heartbeat with a per-message TTL of three heartbeats, so a runtime
//!   that dies drops out by itself; one that stops gracefully removes its
//!   entry.

use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use natask_core::{Backoff, TaskEntry, Until};

use crate::jetstream::assets::Bucket;
use crate::jetstream::headers::NATS_MESSAGE_TTL;
use crate::jetstream::provision::{ProvisionError, Provisioner};
use crate::store::tasks::millis;

/// How often a runtime writes its registry entry when
/// [`RuntimeBuilder::heartbeat`](crate::RuntimeBuilder::heartbeat) is not
/// set; the entry lives three heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// How often the catalog entries of a running runtime are written again,
/// so that the catalog's own age limit never drops a served task.
pub(crate) const CATALOG_REFRESH: Duration = Duration::from_secs(3600);

/// How long a catalog entry lives without being written again: a task no
/// runtime serves any more leaves the catalog after this.
pub(crate) const CATALOG_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// One task as the runtimes serving it declare it; see
/// [`Client::catalog`](crate::Client::catalog). Stored as JSON (times in
/// Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CatalogEntry {
    /// The task's name.
    pub task: String,
    /// Its queue.
    pub queue: String,
    /// Retries after the first attempt, as the runtime applies them.
    pub retries: u32,
    /// Per-attempt timeout in milliseconds, as the runtime applies it.
    pub timeout_ms: u64,
    /// The delay before each retry, e.g. `exponential(1s, x2, max 5m)`.
    pub backoff: String,
    /// The cron schedule of a cron task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The time zone of the cron schedule (UTC when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The uniqueness declared with `#[task(unique = "..")]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<CatalogUnique>,
    /// The payload version the handler reads (`#[task(version = ..)]`).
    #[serde(default = "first_version")]
    pub version: u32,
    /// The JSON Schema of the payload (`#[task]` reads it from the
    /// parameters' types; types it cannot see into accept any value and
    /// name the Rust type in `x-rust-type`).
    pub schema: serde_json::Value,
    /// Where the task is defined: module, crate, file and line.
    pub defined_at: String,
    /// The runtime that wrote this entry last.
    pub worker: String,
    /// When it was written.
    #[serde(with = "millis::required")]
    pub updated_at: SystemTime,
}

fn first_version() -> u32 {
    1
}

/// The uniqueness of a catalogued task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CatalogUnique {
    /// The lock's lifetime at most, in seconds.
    pub ttl_secs: u64,
    /// The stage that releases the lock early (`started`, `succeeded`,
    /// `finished`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A running runtime, from the registry; see
/// [`Client::workers`](crate::Client::workers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The runtime's id, new at each start.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// natask's version.
    pub version: String,
    /// The queues it serves.
    pub queues: Vec<ServedQueue>,
    /// When it started.
    #[serde(with = "millis::required")]
    pub started_at: SystemTime,
    /// Its latest heartbeat.
    #[serde(with = "millis::required")]
    pub seen_at: SystemTime,
    /// Its heartbeat interval in milliseconds; it drops out of the registry
    /// three heartbeats after its last one.
    pub heartbeat_ms: u64,
}

/// One queue a runtime serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServedQueue {
    /// The queue.
    pub queue: String,
    /// Its handlers at most at once in this runtime.
    pub concurrency: usize,
    /// Handlers running now.
    pub in_flight: usize,
    /// Handlers finished (in any outcome) since the runtime started.
    #[serde(default)]
    pub finished: u64,
    /// Handlers finished per second over the latest heartbeat interval.
    #[serde(default)]
    pub finished_per_sec: f64,
    /// The tasks this runtime serves on it.
    pub tasks: Vec<String>,
}

/// Reading or writing the catalog or the registry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The bucket could not be created or opened.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// JetStream refused or did not answer.
    #[error("could not read or write the bucket `{bucket}`")]
    JetStream {
        /// The bucket.
        bucket: String,
        /// Why.
        #[source]
        source: async_nats::Error,
    },
}

/// The catalog entry of `entry` as a runtime with these defaults serves it.
pub(crate) fn catalog_entry(
    entry: &TaskEntry,
    retries: u32,
    timeout: Duration,
    backoff: Backoff,
    worker: &str,
) -> CatalogEntry {
    CatalogEntry {
        task: entry.name.to_owned(),
        queue: entry.queue.to_owned(),
        retries: entry.retries.unwrap_or(retries),
        timeout_ms: entry
            .timeout_ms
            .unwrap_or(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        backoff: describe(entry.backoff.unwrap_or(backoff)),
        cron: entry.cron.map(str::to_owned),
        time_zone: entry.time_zone.map(str::to_owned),
        unique: entry.unique.map(|u| CatalogUnique {
            ttl_secs: u.ttl.as_secs(),
            until: u.until.map(|s: Until| s.as_str().to_owned()),
        }),
        version: entry.version,
        schema: serde_json::from_str(entry.schema).unwrap_or(serde_json::Value::Null),
        defined_at: entry.location(),
        worker: worker.to_owned(),
        updated_at: SystemTime::now(),
    }
}

/// A backoff as `#[task(backoff = "..")]` would write it.
fn describe(backoff: Backoff) -> String {
    let d = |ms: u64| {
        let d = Duration::from_millis(ms);
        match ms {
            ms if ms % 3_600_000 == 0 && ms > 0 => format!("{}h", d.as_secs() / 3600),
            ms if ms % 60_000 == 0 && ms > 0 => format!("{}m", d.as_secs() / 60),
            ms if ms % 1_000 == 0 && ms > 0 => format!("{}s", d.as_secs()),
            ms => format!("{ms}ms"),
        }
    };
    match backoff {
        Backoff::Fixed { delay_ms } => format!("fixed({})", d(delay_ms)),
        Backoff::Exponential {
            base_ms,
            factor,
            max_ms,
        } => format!("exponential({}, x{factor}, max {})", d(base_ms), d(max_ms)),
        Backoff::List(delays) => {
            let delays: Vec<_> = delays.iter().map(|ms| d(*ms)).collect();
            format!("list({})", delays.join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// This machine's host name, as far as it can be read.
pub(crate) fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The catalog and the registry of one client's prefix.
pub(crate) struct Fleet<'a> {
    pub(crate) provisioner: &'a Provisioner,
}

impl Fleet<'_> {
    fn failed(&self, bucket: Bucket, source: impl Into<async_nats::Error>) -> FleetError {
        FleetError::JetStream {
            bucket: bucket.name(self.provisioner.names()),
            source: source.into(),
        }
    }

    /// Writes `entries` to the catalog.
    pub(crate) async fn publish_catalog(&self, entries: &[CatalogEntry]) -> Result<(), FleetError> {
        let store = self.provisioner.bucket(Bucket::Catalog).await?;
        for entry in entries {
            let value = serde_json::to_vec(entry).expect("a catalog entry serialises");
            store
                .put(format!("{}.{}", entry.queue, entry.task), value.into())
                .await
                .map_err(|e| self.failed(Bucket::Catalog, e))?;
        }
        Ok(())
    }

    /// Writes `worker`'s registry entry, living `ttl`.
    pub(crate) async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        ttl: Duration,
    ) -> Result<(), FleetError> {
        // Opens (or creates) the bucket, with per-message TTLs.
        self.provisioner.bucket(Bucket::Workers).await?;
        let bucket = Bucket::Workers.name(self.provisioner.names());
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_TTL, ttl.as_secs().max(1).to_string().as_str());
        let value = serde_json::to_vec(worker).expect("a registry entry serialises");
        self.provisioner
            .js()
            .publish_with_headers(format!("$KV.{bucket}.{}", worker.id), headers, value.into())
            .await
            .map_err(|e| self.failed(Bucket::Workers, e))?
            .await
            .map_err(|e| self.failed(Bucket::Workers, e))?;
        Ok(())
    }

    /// Removes `id` from the registry (a graceful stop).
    pub(crate) async fn leave(&self, id: &str) -> Result<(), FleetError> {
        let store = self.provisioner.bucket(Bucket::Workers).await?;
        store
            .purge(id)
            .await
            .map_err(|e| self.failed(Bucket::Workers, e))
    }

    /// Every catalog entry, by queue then task.
    pub(crate) async fn catalog(&self) -> Result<Vec<CatalogEntry>, FleetError> {
        let mut entries: Vec<CatalogEntry> = self.read_all(Bucket::Catalog).await?;
        entries.sort_by(|a, b| (&a.queue, &a.task).cmp(&(&b.queue, &b.task)));
        Ok(entries)
    }

    /// Every registered runtime, oldest first.
    pub(crate) async fn workers(&self) -> Result<Vec<WorkerInfo>, FleetError> {
        let mut workers: Vec<WorkerInfo> = self.read_all(Bucket::Workers).await?;
        workers.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        Ok(workers)
    }

    /// The current value of every key of `bucket` that decodes (an entry of
    /// a newer natask with fields this one does not know still decodes).
    /// The keys come from the stream's subject counts and the values from
    /// direct gets, so reading needs no consumer (`docs/security.md`).
    async fn read_all<T: serde::de::DeserializeOwned>(
        &self,
        bucket: Bucket,
    ) -> Result<Vec<T>, FleetError> {
        // Reading makes nothing: no bucket, nothing in it.
        let Some(store) = self.provisioner.existing_bucket(bucket).await? else {
            return Ok(Vec::new());
        };
        let stream = self
            .provisioner
            .js()
            .get_stream_no_info(&store.stream_name)
            .await
            .map_err(|e| self.failed(bucket, e))?;
        let subjects: Vec<(String, usize)> = stream
            .info_with_subjects(format!("{}>", store.prefix))
            .await
            .map_err(|e| self.failed(bucket, e))?
            .try_collect()
            .await
            .map_err(|e| self.failed(bucket, e))?;
        let mut out = Vec::new();
        for (subject, _) in subjects {
            let Some(key) = subject.strip_prefix(&store.prefix) else {
                continue;
            };
            // Gone (expired, left, or a marker): no value.
            let Some(value) = store.get(key).await.map_err(|e| self.failed(bucket, e))? else {
                continue;
            };
            match serde_json::from_slice(&value) {
                Ok(item) => out.push(item),
                Err(error) => {
                    tracing::warn!(bucket = %bucket.name(self.provisioner.names()), key, %error, "skipping an entry that does not decode")
                }
            }
        }
        Ok(out)
    }
}
