use natask_runtime::task;

#[task]
async fn envoyer_café(to: String) {
    let _ = to;
}

fn main() {}
