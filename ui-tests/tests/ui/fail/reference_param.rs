use natask_runtime::task;

#[task]
async fn greet(name: &str) {
    let _ = name;
}

fn main() {}
