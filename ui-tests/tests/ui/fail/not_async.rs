use natask_runtime::task;

#[task]
fn not_async(n: u32) {
    let _ = n;
}

fn main() {}
