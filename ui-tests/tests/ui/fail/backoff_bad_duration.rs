use natask_runtime::task;

#[task(backoff = "list(1s, 5 minutes)")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
