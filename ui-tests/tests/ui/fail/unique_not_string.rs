use natask_runtime::task;

#[task(unique = 600)]
async fn build_report(tenant: String) {
    let _ = tenant;
}

fn main() {}
