use natask_runtime::{task, TaskContext};

#[task(unique = "10m", unique_by = "ctx")]
async fn build_report(ctx: &TaskContext, tenant: String) {
    let _ = (ctx, tenant);
}

fn main() {}
