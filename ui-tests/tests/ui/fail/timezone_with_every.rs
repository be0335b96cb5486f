use natask_runtime::task;

#[task(cron = "@every 1h", timezone = "Europe/Berlin")]
async fn poll() {}

fn main() {}
