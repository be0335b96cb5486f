use natask_runtime::task;

#[task(backoff = "exponential(10s, x2, max 1s)")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
