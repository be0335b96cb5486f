use natask_runtime::task;

// Five fields, as classic crontab has: nats-server wants seconds first.
#[task(cron = "*/5 * * * *")]
async fn digest() {}

fn main() {}
