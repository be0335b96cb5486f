//! Prometheus metrics, through the [`metrics`] facade.
//!
//! natask records with the `metrics` macros, so any recorder sees them. When
//! the runtime serves HTTP ([`RuntimeBuilder::http`](crate::RuntimeBuilder::http))
//! and no recorder is installed yet, natask installs the Prometheus recorder
//! of `metrics-exporter-prometheus` and serves it at `/metrics`.
//!
//! Why `metrics` rather than `prometheus-client`: it is a facade, so a user
//! who already exports to StatsD, OTLP or their own Prometheus registry gets
//! natask's metrics there without configuration, and the hot path costs one
//! atomic per update.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `natask_tasks_enqueued_total` | counter | queue, task |
//! | `natask_tasks_started_total` | counter | queue, task |
//! | `natask_tasks_succeeded_total` | counter | queue, task |
//! | `natask_tasks_failed_total` | counter | queue, task (every failed attempt) |
//! | `natask_tasks_retried_total` | counter | queue, task |
//! | `natask_tasks_dead_lettered_total` | counter | queue, task, reason |
//! | `natask_tasks_cancelled_total` | counter | queue, task (removed by a worker, or stopped while running) |
//! | `natask_tasks_expired_total` | counter | queue, task (not started within the queue's validity) |
//! | `natask_task_duration_seconds` | histogram | queue, task |
//! | `natask_tasks_in_flight` | gauge | queue, task |
//! | `natask_queue_pending` | gauge | queue (tasks waiting, from the consumer) |
//! | `natask_queue_ack_pending` | gauge | queue (tasks delivered, not yet settled) |
//! | `natask_queue_redelivered` | gauge | queue |

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::PrometheusHandle;

use natask_core::{HandlerFuture, TaskContext};

use crate::middleware::{Middleware, Next};

/// The built-in metrics middleware.
///
/// Each (queue, task) pair's handles are registered with the recorder once,
/// on its first task, and kept: updating a handle is an atomic operation,
/// while every `counter!(..)` call would hash its labels and look them up
/// in the recorder's registry again.
#[derive(Default)]
pub(crate) struct Metrics {
    handles: RwLock<HashMap<(&'static str, &'static str), Arc<Handles>>>,
}

struct Handles {
    started: Counter,
    succeeded: Counter,
    failed: Counter,
    in_flight: Gauge,
    duration: Histogram,
}

impl Handles {
    fn new(queue: &'static str, task: &'static str) -> Handles {
        let labels = [("queue", queue), ("task", task)];
        Handles {
            started: counter!("natask_tasks_started_total", &labels),
            succeeded: counter!("natask_tasks_succeeded_total", &labels),
            failed: counter!("natask_tasks_failed_total", &labels),
            in_flight: gauge!("natask_tasks_in_flight", &labels),
            duration: histogram!("natask_task_duration_seconds", &labels),
        }
    }
}

impl Metrics {
    fn handles(&self, queue: &'static str, task: &'static str) -> Arc<Handles> {
        let known = self
            .handles
            .read()
            .expect("metric handles poisoned")
            .get(&(queue, task))
            .cloned();
        known.unwrap_or_else(|| {
            Arc::clone(
                self.handles
                    .write()
                    .expect("metric handles poisoned")
                    .entry((queue, task))
                    .or_insert_with(|| Arc::new(Handles::new(queue, task))),
            )
        })
    }
}

struct InFlight(Arc<Handles>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

impl Middleware for Metrics {
    fn around<'a>(&'a self, ctx: &'a TaskContext, next: Next<'a>) -> HandlerFuture<'a> {
        let handles = self.handles(ctx.queue(), ctx.task_name());
        Box::pin(async move {
            handles.started.increment(1);
            handles.in_flight.increment(1.0);
            let in_flight = InFlight(handles);
            let started = Instant::now();
            let result = next.run().await;
            let handles = &in_flight.0;
            handles.duration.record(started.elapsed().as_secs_f64());
            match &result {
                Ok(_) => handles.succeeded.increment(1),
                Err(_) => handles.failed.increment(1),
            }
            result
        })
    }
}

pub(crate) fn enqueued(queue: &'static str, task: &'static str) {
    counter!("natask_tasks_enqueued_total", "queue" => queue, "task" => task).increment(1);
}

pub(crate) fn retried(queue: &'static str, task: &'static str) {
    counter!("natask_tasks_retried_total", "queue" => queue, "task" => task).increment(1);
}

/// A task that will not run (again): `cancelled` or `expired`.
pub(crate) fn ended_unrun(queue: &str, task: &str, state: crate::TaskState) {
    let name = match state {
        crate::TaskState::Expired => "natask_tasks_expired_total",
        _ => "natask_tasks_cancelled_total",
    };
    counter!(name, "queue" => queue.to_owned(), "task" => task.to_owned()).increment(1);
}

pub(crate) fn dead_lettered(queue: &str, task: &str, reason: &'static str) {
    counter!(
        "natask_tasks_dead_lettered_total",
        "queue" => queue.to_owned(),
        "task" => task.to_owned(),
        "reason" => reason
    )
    .increment(1);
}

pub(crate) fn queue_state(queue: &'static str, info: &async_nats::jetstream::consumer::Info) {
    gauge!("natask_queue_pending", "queue" => queue).set(info.num_pending as f64);
    gauge!("natask_queue_ack_pending", "queue" => queue).set(info.num_ack_pending as f64);
    gauge!("natask_queue_redelivered", "queue" => queue).set(info.num_redelivered as f64);
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The Prometheus handle natask installed, or `None` when another recorder
/// was installed first.
pub(crate) fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics is not served by natask");
                None
            }
        })
        .as_ref()
}
