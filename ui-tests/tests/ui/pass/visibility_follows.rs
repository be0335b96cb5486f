//! The struct, its fields, `new` and `enqueue` have the fn's visibility.
mod jobs {
    #[natask_runtime::task]
    pub(crate) async fn archive(id: u64) {
        let _ = id;
    }
}

fn main() {
    let job = jobs::Archive::new(7);
    assert_eq!(job.id, 7);
    let _ = jobs::Archive::enqueue;
}
