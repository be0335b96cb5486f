use natask_runtime::event;

#[event]
struct Changed<T> {
    value: T,
}

fn main() {}
