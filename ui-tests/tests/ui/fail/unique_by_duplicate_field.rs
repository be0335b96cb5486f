use natask_runtime::task;

#[task(unique = "10m", unique_by = "tenant, tenant")]
async fn build_report(tenant: String, report: String) {
    let _ = (tenant, report);
}

fn main() {}
