use natask_runtime::task;

#[task(queue = "reports", time_zone = "Europe/Berlin")]
async fn report(month: u32) {
    let _ = month;
}

fn main() {}
