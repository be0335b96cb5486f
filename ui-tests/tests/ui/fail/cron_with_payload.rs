use natask_runtime::{task, TaskContext};

#[task(cron = "@hourly")]
async fn digest(ctx: &TaskContext, to: String, cc: String) {
    let _ = (ctx, to, cc);
}

fn main() {}
