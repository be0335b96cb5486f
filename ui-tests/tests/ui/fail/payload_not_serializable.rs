use natask_runtime::task;

struct Opaque;

#[task]
async fn takes_opaque(value: Opaque) {
    let _ = value;
}

fn main() {}
