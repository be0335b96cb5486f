use natask_runtime::subscribe;

#[derive(serde::Serialize, serde::Deserialize)]
struct OrderPlaced {
    order: u64,
}

#[subscribe(service = "billing")]
async fn charge(order: OrderPlaced) {
    let _ = order;
}

fn main() {}
