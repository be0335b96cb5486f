use natask_runtime::{task, TaskError};

struct Thumbnail {
    url: String,
}

#[task]
async fn resize(url: String) -> Result<Thumbnail, TaskError> {
    Ok(Thumbnail { url })
}

fn main() {}
