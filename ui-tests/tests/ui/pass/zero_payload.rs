//! No payload parameters: a unit-like struct.
use natask_runtime::{task, TaskContext};

#[task(queue = "maintenance")]
async fn vacuum(ctx: &TaskContext) {
    let _ = ctx.attempt();
}

fn main() {
    let v = Vacuum::new();
    assert_eq!(serde_json::to_string(&v).unwrap(), "null");
    let _: Vacuum = Vacuum;
    assert_eq!(format!("{:?}", v.clone()), "Vacuum");
}
