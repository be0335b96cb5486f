//! A running runtime in the live catalog and the worker registry
//! (`store::fleet`): its tasks when it starts (and every hour), itself on
//! every heartbeat, and its leaving when it stops.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use natask_core::TaskId;

use super::fetch::{QueueWorker, Source};
use super::Shared;
use crate::store::fleet::{self, CatalogEntry, ServedQueue, WorkerInfo, CATALOG_REFRESH};

/// The heartbeat of one run of a runtime.
pub(super) struct Heartbeat {
    shared: Arc<Shared>,
    workers: Vec<Arc<QueueWorker>>,
    /// This run's id and the registry entry's fixed parts.
    info: WorkerInfo,
}

impl Heartbeat {
    pub(super) fn new(shared: Arc<Shared>, workers: Vec<Arc<QueueWorker>>) -> Heartbeat {
        let now = SystemTime::now();
        let info = WorkerInfo {
            id: TaskId::new().to_string(),
            host: fleet::host_name(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            queues: Vec::new(),
            started_at: now,
            seen_at: now,
            heartbeat_ms: u64::try_from(shared.config.heartbeat.as_millis()).unwrap_or(u64::MAX),
        };
        Heartbeat {
            shared,
            workers,
            info,
        }
    }

    /// Writes the catalog, then the registry entry every heartbeat, until
    /// `stop`; then removes the entry.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        let every = self.shared.config.heartbeat;
        let ttl = every * 3;
        let mut catalogued: Option<tokio::time::Instant> = None;
        let mut failing = false;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => break,
            }
            let shared = Arc::clone(&self.shared);
            let fleet = shared.client.fleet();
            let mut result = Ok(());
            if catalogued.is_none_or(|at| at.elapsed() >= CATALOG_REFRESH) {
                result = fleet.publish_catalog(&self.catalog()).await;
                if result.is_ok() {
                    catalogued = Some(tokio::time::Instant::now());
                }
            }
            if result.is_ok() {
                self.refresh();
                result = fleet.heartbeat(&self.info, ttl).await;
            }
            match result {
                Ok(()) if failing => {
                    tracing::info!(id = %self.info.id, "worker registry written again");
                    failing = false;
                }
                Err(error) if !failing => {
                    tracing::warn!(id = %self.info.id, error = %error, "could not write the worker registry or the catalog; tasks are served all the same");
                    failing = true;
                }
                _ => {}
            }
        }
        if let Err(error) = self.shared.client.fleet().leave(&self.info.id).await {
            tracing::debug!(id = %self.info.id, %error, "could not remove this runtime from the worker registry; it drops out after its TTL");
        }
    }

    /// The entry's parts that change: the time, the handlers running and
    /// those finished, and the rate since the previous heartbeat.
    fn refresh(&mut self) {
        let now = SystemTime::now();
        let elapsed = now
            .duration_since(self.info.seen_at)
            .unwrap_or_default()
            .as_secs_f64();
        let before: Vec<u64> = self.info.queues.iter().map(|q| q.finished).collect();
        self.info.seen_at = now;
        self.info.queues = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut tasks: Vec<String> = w.handlers.keys().map(|t| (*t).to_owned()).collect();
                tasks.sort_unstable();
                let finished = w.finished.load(Ordering::Relaxed);
                let since = finished.saturating_sub(before.get(i).copied().unwrap_or(finished));
                ServedQueue {
                    queue: w.queue.to_owned(),
                    concurrency: w.concurrency,
                    in_flight: w.running.load(Ordering::Relaxed),
                    finished,
                    finished_per_sec: if elapsed > 0.0 {
                        since as f64 / elapsed
                    } else {
                        0.0
                    },
                    tasks,
                }
            })
            .collect();
    }

    /// What this runtime serves, as the catalog holds it: its tasks, not
    /// its subscriptions (an event is published, never enqueued as a task
    /// of the subscription's "queue").
    fn catalog(&self) -> Vec<CatalogEntry> {
        let config = &self.shared.config;
        self.workers
            .iter()
            .filter(|w| matches!(w.source, Source::Queue))
            .flat_map(|w| {
                w.handlers.values().map(|entry| {
                    fleet::catalog_entry(
                        entry,
                        w.default_retries,
                        config.default_timeout,
                        config.default_backoff,
                        &self.info.id,
                    )
                })
            })
            .collect()
    }
}
