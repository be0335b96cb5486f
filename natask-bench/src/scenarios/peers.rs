//! natask against its peers on one server: the natask half of scenario 7
//! (taskiq-nats runs in Python, `crate::peer`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{natask_jobs, pad, per_s, DEFAULT_SIZE};
use crate::probe::Probe;
use crate::side::{self, Worker};

/// 7, natask's half: the same shape as the taskiq run (each enqueue
/// awaited, then 100 handlers), on the same server.
pub(crate) async fn natask_like_taskiq(
    url: &str,
    n: u64,
    cap: Duration,
) -> anyhow::Result<(f64, f64)> {
    let client = side::connect_untracked(url).await?;
    let pad = pad(DEFAULT_SIZE);
    let t = Instant::now();
    let sent = side::enqueue_each(&client, natask_jobs(n, &pad), t + cap).await?;
    let enqueue = per_s(sent, t.elapsed());
    let probe = Arc::new(Probe::new(Instant::now(), sent, false));
    let t = Instant::now();
    let worker = Worker::start(&client, Arc::clone(&probe), 100).await?;
    probe.wait(cap).await;
    let process = per_s(probe.handled(), t.elapsed());
    worker.stop().await?;
    Ok((enqueue, process))
}
