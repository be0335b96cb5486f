use natask_runtime::{event, subscribe};

#[event]
struct OrderPlaced {
    order: u64,
}

#[subscribe(service = "billing_and_invoicing_for_every_region_of_the_world")]
async fn charge_the_customer(order: OrderPlaced) {
    let _ = order;
}

fn main() {}
