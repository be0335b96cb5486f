//! `Debug` and `Clone` are implemented when every payload type has them,
//! like a derive on a generic struct, and simply absent otherwise.
use natask_runtime::task;

#[derive(serde::Serialize, serde::Deserialize)]
struct Secret(String);

#[task]
async fn rotate(secret: Secret) {
    let _ = secret;
}

#[task]
async fn plain(n: u32) {
    let _ = n;
}

fn main() {
    let _ = Rotate::new(Secret("s".into()));
    let p = Plain::new(1).clone();
    assert_eq!(format!("{p:?}"), "Plain { n: 1 }");
}
