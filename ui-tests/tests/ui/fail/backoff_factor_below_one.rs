use natask_runtime::task;

#[task(backoff = "exponential(1s, x0.5, max 1m)")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
