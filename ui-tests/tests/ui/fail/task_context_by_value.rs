use natask_runtime::{task, TaskContext};

#[task]
async fn send_email(ctx: TaskContext, to: String) {
    let _ = (ctx, to);
}

fn main() {}
