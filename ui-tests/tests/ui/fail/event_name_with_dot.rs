use natask_runtime::event;

#[event(name = "order.placed")]
struct OrderPlaced {
    order: u64,
}

fn main() {}
