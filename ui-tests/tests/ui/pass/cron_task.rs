//! Cron tasks: every accepted form lands in the registry entry unchanged.
use natask_runtime::{task, State, Task, TaskContext};

struct Mailer;

#[task(queue = "reports", cron = "0 */5 * * * *")]
async fn digest(ctx: &TaskContext, mailer: State<Mailer>) {
    let _ = (ctx.id(), &*mailer);
}

#[task(cron = "@every 1m30s")]
async fn poll() {}

#[task(cron = "@hourly")]
async fn hourly() {}

#[task(cron = "0 0 9 * * MON-FRI")]
async fn weekdays() {}

#[task(cron = "0 0 6 * * *", time_zone = "Europe/Berlin")]
async fn berlin_morning() {}

fn main() {
    assert_eq!(Digest::ENTRY.cron, Some("0 */5 * * * *"));
    assert_eq!(Digest::ENTRY.queue, "reports");
    assert_eq!(Poll::ENTRY.cron, Some("@every 1m30s"));
    assert_eq!(Hourly::ENTRY.cron, Some("@hourly"));
    assert_eq!(Weekdays::ENTRY.cron, Some("0 0 9 * * MON-FRI"));
    assert_eq!(Poll::ENTRY.retries, None);
    assert_eq!(BerlinMorning::ENTRY.time_zone, Some("Europe/Berlin"));
    assert_eq!(Weekdays::ENTRY.time_zone, None);
}
