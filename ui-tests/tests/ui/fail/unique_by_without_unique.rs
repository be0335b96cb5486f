use natask_runtime::task;

#[task(unique_by = "tenant")]
async fn build_report(tenant: String) {
    let _ = tenant;
}

fn main() {}
