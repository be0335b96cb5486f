use natask_runtime::{task, TaskError};

#[task(upgrade = upgrade_send_email)]
async fn send_email(to: String) {
    let _ = to;
}

fn upgrade_send_email(_: u32, _: serde_json::Value) -> Result<SendEmail, TaskError> {
    Err(TaskError::fatal("no"))
}

fn main() {}
