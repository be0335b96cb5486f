use natask_runtime::event;

mod shop {
    #[natask_runtime::event]
    pub struct OrderPlaced {
        pub order: u64,
    }
}

mod legacy {
    #[natask_runtime::event(name = "order_placed")]
    pub struct OldOrder {
        pub order: u64,
    }
}

#[event]
struct Unrelated {}

fn main() {}
