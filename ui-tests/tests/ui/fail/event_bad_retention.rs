use natask_runtime::event;

#[event(retention = "7x")]
struct OrderPlaced {
    order: u64,
}

fn main() {}
