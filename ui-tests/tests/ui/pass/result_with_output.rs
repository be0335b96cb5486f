//! A task may return a value; it is serialised as the task's result.
use natask_runtime::{task, TaskError};

#[derive(serde::Serialize)]
struct Thumbnail {
    url: String,
}

#[task]
async fn resize(url: String) -> Result<Thumbnail, TaskError> {
    Ok(Thumbnail { url: format!("{url}@200w") })
}

#[task]
async fn count(n: u32) -> Result<u32, std::io::Error> {
    Ok(n + 1)
}

fn main() {
    let _ = (Resize::new("u".into()), Count::new(1));
}
