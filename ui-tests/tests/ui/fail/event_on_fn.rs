use natask_runtime::event;

#[event]
async fn order_placed(order: u64) {
    let _ = order;
}

fn main() {}
