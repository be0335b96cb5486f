use natask_runtime::task;

#[task(unique = "10m", unique_by = "tenant")]
async fn rebuild_index() {}

fn main() {}
