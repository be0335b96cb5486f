use natask_runtime::event;

#[event(retension = "7d")]
struct OrderPlaced {
    order: u64,
}

fn main() {}
