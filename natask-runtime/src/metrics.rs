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
//! | `natask_task_duration_seconds` | histogram | queue, task |
//! | `natask_tasks_in_flight` | gauge | queue, task |
//! | `natask_queue_pending` | gauge | queue (tasks waiting, from the consumer) |
//! | `natask_queue_ack_pending` | gauge | queue (tasks delivered, not yet settled) |
//! | `natask_queue_redelivered` | gauge | queue |

use std::sync::OnceLock;
use std::time::Instant;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;

use natask_core::{HandlerFuture, TaskContext};

use crate::middleware::{Middleware, Next};

/// The built-in metrics middleware.
pub(crate) struct Metrics;

struct InFlight {
    queue: &'static str,
    task: &'static str,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("natask_tasks_in_flight", "queue" => self.queue, "task" => self.task).decrement(1.0);
    }
}

impl Middleware for Metrics {
    fn around<'a>(&'a self, ctx: &'a TaskContext, next: Next<'a>) -> HandlerFuture<'a> {
        let (queue, task) = (ctx.queue(), ctx.task_name());
        Box::pin(async move {
            counter!("natask_tasks_started_total", "queue" => queue, "task" => task).increment(1);
            gauge!("natask_tasks_in_flight", "queue" => queue, "task" => task).increment(1.0);
            let _in_flight = InFlight { queue, task };
            let started = Instant::now();
            let result = next.run().await;
            histogram!("natask_task_duration_seconds", "queue" => queue, "task" => task)
                .record(started.elapsed().as_secs_f64());
            match &result {
                Ok(_) => counter!("natask_tasks_succeeded_total", "queue" => queue, "task" => task)
                    .increment(1),
                Err(_) => counter!("natask_tasks_failed_total", "queue" => queue, "task" => task)
                    .increment(1),
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
