use natask_runtime::task;

#[task(qeue = "emails")]
async fn typo(n: u32) {
    let _ = n;
}

fn main() {}
