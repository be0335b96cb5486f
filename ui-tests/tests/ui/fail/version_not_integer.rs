use natask_runtime::task;

#[task(version = "2")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
