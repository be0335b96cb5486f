use natask_runtime::task;

#[task(queue = "emails", retries = 3, queue = "mail")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
