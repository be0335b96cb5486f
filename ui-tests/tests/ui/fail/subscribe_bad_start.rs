use natask_runtime::{event, subscribe};

#[event]
struct OrderPlaced {
    order: u64,
}

#[subscribe(service = "billing", start = "first")]
async fn charge(order: OrderPlaced) {
    let _ = order;
}

fn main() {}
