use natask_runtime::task;

#[task(queue, retries = 3)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
