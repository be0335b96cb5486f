//! Payload types from other crates, in full paths.
use natask_runtime::task;

#[task]
async fn store(blobs: std::collections::BTreeMap<String, Vec<u8>>, at: Option<std::time::Duration>) {
    let _ = (blobs, at);
}

fn main() {
    let mut blobs = std::collections::BTreeMap::new();
    blobs.insert("a".to_owned(), vec![1, 2]);
    let s = Store::new(blobs, None);
    let back: Store = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back.blobs["a"], [1, 2]);
}
