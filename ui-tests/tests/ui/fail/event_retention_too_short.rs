use natask_runtime::event;

#[event(retention = "500ms")]
struct OrderPlaced {
    order: u64,
}

fn main() {}
