use natask_runtime::task;

#[task(backoff = "list()")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
