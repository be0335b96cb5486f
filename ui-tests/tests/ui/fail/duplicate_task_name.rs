use natask_runtime::task;

mod billing {
    #[natask_runtime::task(queue = "billing")]
    pub async fn send_email(to: String) {
        let _ = to;
    }
}

mod marketing {
    #[natask_runtime::task(queue = "marketing", name = "send_email", payload = Newsletter)]
    pub async fn send_newsletter(to: String) {
        let _ = to;
    }
}

#[task]
async fn unrelated() {}

fn main() {}
