use natask_runtime::{task, TaskContext};

#[task]
async fn send_email(ctx: &mut TaskContext, to: String) {
    let _ = (ctx, to);
}

fn main() {}
