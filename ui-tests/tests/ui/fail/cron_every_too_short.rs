use natask_runtime::task;

#[task(cron = "@every 500ms")]
async fn poll() {}

fn main() {}
