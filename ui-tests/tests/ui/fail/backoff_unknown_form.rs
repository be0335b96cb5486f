use natask_runtime::task;

#[task(backoff = "linear(1s)")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
