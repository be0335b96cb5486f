use natask_runtime::{event, subscribe};

#[event]
struct OrderPlaced {
    order: u64,
}

#[subscribe(retries = 3)]
async fn charge(order: OrderPlaced) {
    let _ = order;
}

fn main() {}
