//! The natask side: the one task every scenario enqueues and handles.

use natask_runtime::{task, State, TaskError};

use crate::probe::Probe;

/// The queue of [`BenchJob`].
pub(crate) const QUEUE: &str = "bench";

/// A no-op task: it only tells the probe it started.
#[task(queue = "bench")]
pub(crate) async fn bench_job(
    probe: State<Probe>,
    seq: u64,
    sent_ns: u64,
    pad: String,
) -> Result<(), TaskError> {
    let _ = (seq, pad);
    probe.hit(sent_ns);
    Ok(())
}
