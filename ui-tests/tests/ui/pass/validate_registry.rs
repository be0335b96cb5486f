//! `registry::validate()` in a test catches duplicate names across crates;
//! here every task is linked once and it passes.
use natask_runtime::task;

#[task]
async fn one() {}

#[task]
async fn two() {}

fn main() {
    natask_runtime::registry::validate().unwrap();
    let names: Vec<_> = natask_runtime::registry::tasks().iter().map(|t| t.name).collect();
    assert!(names.contains(&"one") && names.contains(&"two"), "{names:?}");
}
