use natask_runtime::task;

#[task(cron = "@hourly", unique = "10m")]
async fn digest() {}

fn main() {}
