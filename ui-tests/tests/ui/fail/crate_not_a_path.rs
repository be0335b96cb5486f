use natask_runtime::task;

#[task(crate = "natask_runtime")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
