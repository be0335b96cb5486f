use natask_runtime::task;

#[task(cron = "@every 1h", time_zone = "Europe/Berlin")]
async fn poll() {}

fn main() {}
