use natask_runtime::subscribe;

#[subscribe(service = "billing")]
struct Charge {
    order: u64,
}

fn main() {}
