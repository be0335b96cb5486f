use natask_runtime::task;

#[task(unique = "500ms")]
async fn build_report(tenant: String) {
    let _ = tenant;
}

fn main() {}
