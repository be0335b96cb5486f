use natask_runtime::task;

#[task(timeout = 30)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
