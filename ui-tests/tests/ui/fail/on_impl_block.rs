use natask_runtime::task;

struct Mailer;

#[task]
impl Mailer {
    async fn send(&self) {}
}

fn main() {}
