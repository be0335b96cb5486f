//! What a handler reports: how many tasks ran, when, and how late.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Counts handled tasks against a target and, when asked, records each
/// task's latency from enqueue to handler start. One per measurement.
#[derive(Debug)]
pub(crate) struct Probe {
    origin: Instant,
    target: u64,
    handled: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    done: Notify,
    latencies: Option<Mutex<Vec<u64>>>,
}

impl Probe {
    /// A probe that is done after `target` tasks; `record` keeps latencies.
    pub(crate) fn new(origin: Instant, target: u64, record: bool) -> Probe {
        Probe {
            origin,
            target,
            handled: AtomicU64::new(0),
            first_ns: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            done: Notify::new(),
            latencies: record.then(|| Mutex::new(Vec::with_capacity(target as usize))),
        }
    }

    /// Nanoseconds since the run's origin: the clock of `sent_ns`.
    pub(crate) fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Called at the start of every handler. `sent_ns` 0 marks a warm-up
    /// task, whose latency is not recorded.
    pub(crate) fn hit(&self, sent_ns: u64) {
        let now = self.now_ns();
        if let (Some(latencies), true) = (&self.latencies, sent_ns > 0) {
            latencies
                .lock()
                .expect("latencies poisoned")
                .push(now.saturating_sub(sent_ns));
        }
        let n = self.handled.fetch_add(1, Ordering::AcqRel) + 1;
        if n == 1 {
            self.first_ns.store(now, Ordering::Release);
        }
        if n == self.target {
            self.last_ns.store(now, Ordering::Release);
            // `notify_one` keeps a permit if nobody waits yet.
            self.done.notify_one();
        }
    }

    /// Waits until the target is reached; false after `deadline`.
    pub(crate) async fn wait(&self, deadline: Duration) -> bool {
        if self.handled() >= self.target {
            return true;
        }
        tokio::time::timeout(deadline, self.done.notified())
            .await
            .is_ok()
    }

    /// Tasks handled so far.
    pub(crate) fn handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }

    /// Tasks per second between the first and the last handler start.
    pub(crate) fn steady_rate(&self) -> f64 {
        let first = self.first_ns.load(Ordering::Acquire);
        let last = self.last_ns.load(Ordering::Acquire);
        if last <= first {
            return 0.0;
        }
        (self.target - 1) as f64 / ((last - first) as f64 / 1e9)
    }

    /// Tasks per second from the origin to the target's last task (to now,
    /// while the target is not reached).
    pub(crate) fn rate_from_origin(&self) -> f64 {
        let last = self.last_ns.load(Ordering::Acquire);
        let end = if last > 0 { last } else { self.now_ns() };
        self.handled() as f64 / (end as f64 / 1e9)
    }

    /// The recorded latencies, sorted, in nanoseconds.
    pub(crate) fn latencies(&self) -> Vec<u64> {
        let mut all = self
            .latencies
            .as_ref()
            .map(|l| l.lock().expect("latencies poisoned").clone())
            .unwrap_or_default();
        all.sort_unstable();
        all
    }
}
