use natask_runtime::task;

#[task(version = 2, upgrade = upgrade_send_email)]
async fn send_email(to: String) {
    let _ = to;
}

// Returns the payload itself, not a `Result<SendEmail, TaskError>`.
fn upgrade_send_email(_: u32, old: serde_json::Value) -> SendEmail {
    SendEmail { to: old.to_string() }
}

fn main() {}
