use natask_runtime::task;

#[task]
async fn store<T: serde::Serialize>(value: T) {
    let _ = value;
}

fn main() {}
