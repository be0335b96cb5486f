use natask_runtime::task;

#[task(name = "mail.send")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
