use natask_runtime::task;

#[task]
async fn greet(name: impl Into<String>) {
    let _ = name.into();
}

fn main() {}
