use natask_runtime::{subscribe, TaskContext};

#[subscribe(service = "billing")]
async fn charge(ctx: &TaskContext) {
    let _ = ctx;
}

fn main() {}
