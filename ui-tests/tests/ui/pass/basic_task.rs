use natask_runtime::{task, State, TaskContext, TaskError};

struct Mailer;

/// Sends one email.
#[task(queue = "emails", retries = 3, timeout = "30s")]
async fn send_email(_mailer: State<Mailer>, ctx: &TaskContext, to: String, subject: String) -> Result<(), TaskError> {
    let _ = (ctx.attempt(), to, subject);
    Ok(())
}

fn main() {
    let a = SendEmail { to: "a".into(), subject: "b".into() };
    let b = SendEmail::new("a".into(), "b".into());
    assert_eq!(a.to, b.to);
    assert_eq!(<SendEmail as natask_runtime::Task>::NAME, "send_email");
    assert_eq!(<SendEmail as natask_runtime::Task>::QUEUE, "emails");
}
