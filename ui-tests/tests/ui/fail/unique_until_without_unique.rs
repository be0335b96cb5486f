use natask_runtime::task;

#[task(unique_until = "started")]
async fn build_report(tenant: String) {
    let _ = tenant;
}

fn main() {}
