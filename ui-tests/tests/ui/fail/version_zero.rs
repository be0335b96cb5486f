use natask_runtime::task;

#[task(version = 0)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
