use natask_runtime::task;

#[task(timeout = "0s")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
