use natask_runtime::task;

#[task(cron = "0 0 6 * * *", timezone = "Europe Berlin")]
async fn morning() {}

fn main() {}
