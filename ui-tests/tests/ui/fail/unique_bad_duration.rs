use natask_runtime::task;

#[task(unique = "10 minutes")]
async fn build_report(tenant: String) {
    let _ = tenant;
}

fn main() {}
