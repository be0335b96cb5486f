use natask_runtime::{event, subscribe};

#[event]
struct OrderPlaced {
    order: u64,
}

#[event]
struct OrderPaid {
    order: u64,
}

#[subscribe(service = "billing")]
async fn charge(placed: OrderPlaced, paid: OrderPaid) {
    let _ = (placed, paid);
}

fn main() {}
