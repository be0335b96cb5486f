//! Any `std::error::Error + Send + Sync + 'static` converts with `?`.
use natask_runtime::{task, TaskError};

#[derive(Debug)]
struct MailError;

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mail server said no")
    }
}

impl std::error::Error for MailError {}

#[task]
async fn send(to: String) -> Result<(), TaskError> {
    std::fs::metadata(&to)?;
    Err(MailError)?
}

#[task]
async fn send_typed(to: String) -> Result<(), MailError> {
    let _ = to;
    Err(MailError)
}

fn main() {}
