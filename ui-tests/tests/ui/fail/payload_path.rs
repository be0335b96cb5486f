use natask_runtime::task;

#[task(payload = jobs::SendEmail)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
