//! Every key together, and what lands in the registry entry.
use natask_runtime::{task, Backoff, Task};

#[task(
    queue = "emails",
    name = "mail-v2",
    retries = 5,
    timeout = "2m",
    backoff = "exponential(500ms, x1.5, max 1m)",
    payload = Mail,
    crate = ::natask_runtime
)]
async fn send_email(to: String) {
    let _ = to;
}

#[task(backoff = "fixed(5s)")]
async fn fixed() {}

#[task(backoff = "list(1s, 5s, 30s)")]
async fn listed() {}

fn main() {
    let e = Mail::ENTRY;
    assert_eq!((e.name, e.queue, e.retries, e.timeout_ms), ("mail-v2", "emails", Some(5), Some(120_000)));
    assert_eq!(
        e.backoff,
        Some(Backoff::Exponential { base_ms: 500, factor: 1.5, max_ms: 60_000 })
    );
    assert_eq!(Fixed::ENTRY.backoff, Some(Backoff::Fixed { delay_ms: 5_000 }));
    assert_eq!(Listed::ENTRY.backoff, Some(Backoff::List(&[1_000, 5_000, 30_000])));
    assert_eq!(Listed::ENTRY.retries, None);
}
