//! `version` and `upgrade`: the entry and the trait carry the version, and
//! the upgrade function's type is what the macro expects.
use natask_runtime::{task, Task, TaskError};

#[task(queue = "emails", version = 3, upgrade = upgrade_send_email)]
async fn send_email(to: String, cc: Vec<String>) {
    let _ = (to, cc);
}

fn upgrade_send_email(version: u32, old: serde_json::Value) -> Result<SendEmail, TaskError> {
    match version {
        1 | 2 => Ok(SendEmail {
            to: old["to"].as_str().unwrap_or_default().to_owned(),
            cc: Vec::new(),
        }),
        other => Err(TaskError::fatal(format!("no upgrade from version {other}"))),
    }
}

#[task(version = 2)]
async fn compatible(n: u32, note: Option<String>) {
    let _ = (n, note);
}

#[task]
async fn first() {}

fn main() {
    assert_eq!(SendEmail::VERSION, 3);
    assert_eq!(SendEmail::ENTRY.version, 3);
    assert_eq!(Compatible::VERSION, 2);
    assert_eq!(First::VERSION, 1);
    assert_eq!(First::ENTRY.version, 1);
}
