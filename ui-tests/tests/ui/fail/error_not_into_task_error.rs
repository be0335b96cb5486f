use natask_runtime::task;

#[derive(Debug)]
struct MailError;

#[task]
async fn send_email(to: String) -> Result<(), MailError> {
    let _ = to;
    Err(MailError)
}

fn main() {}
