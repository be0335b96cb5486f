use natask_runtime::{task, State};

struct Mailer;

#[task]
async fn send_email(mailer: &State<Mailer>, to: String) {
    let _ = (mailer, to);
}

fn main() {}
