//! `crate = path` for a crate that re-exports natask under another name.
mod platform {
    pub use ::natask_runtime as jobs;
}

mod tasks {
    // a local `natask_runtime` that is not natask: only `crate = ..` is used
    #[allow(unused_imports)]
    use std as natask_runtime;

    #[crate::platform::jobs::task(crate = crate::platform::jobs)]
    pub async fn ping(n: u8) {
        let _ = n;
    }
}

fn main() {
    use platform::jobs::Task;
    assert_eq!(tasks::Ping::NAME, "ping");
}
