use natask_runtime::task;

#[task(retries = 1000000)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
