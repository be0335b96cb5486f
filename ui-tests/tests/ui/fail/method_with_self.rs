use natask_runtime::task;

struct Mailer;

impl Mailer {
    #[task]
    async fn send(&self, to: String) {
        let _ = to;
    }
}

fn main() {}
