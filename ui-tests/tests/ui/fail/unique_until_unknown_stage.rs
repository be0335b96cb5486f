use natask_runtime::task;

#[task(unique = "10m", unique_until = "start")]
async fn build_report(tenant: String) {
    let _ = tenant;
}

fn main() {}
