//! `payload = Name` names the struct.
use natask_runtime::{task, Task};

#[task(payload = WelcomeMail)]
async fn send_welcome(to: String) {
    let _ = to;
}

fn main() {
    let m = WelcomeMail::new("a".into());
    assert_eq!(m.to, "a");
    assert_eq!(WelcomeMail::NAME, "send_welcome");
}
