use natask_runtime::task;

#[task(cron = "0 0 6 * * *", time_zone = "Europe Berlin")]
async fn morning() {}

fn main() {}
