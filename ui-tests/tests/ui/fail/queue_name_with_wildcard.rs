use natask_runtime::task;

#[task(queue = "emails>")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
