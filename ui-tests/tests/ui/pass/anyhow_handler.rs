//! With the `anyhow` feature, `?` works on `anyhow::Result` and a handler may
//! return `anyhow::Result<T>`.
use anyhow::Context as _;
use natask_runtime::{task, TaskError};

fn parse(s: &str) -> anyhow::Result<u32> {
    s.parse::<u32>().context("not a number")
}

#[task]
async fn with_task_error(n: String) -> Result<u32, TaskError> {
    let v = parse(&n)?;
    let w: u32 = n.parse()?; // and std errors still
    Ok(v + w)
}

#[task]
async fn with_anyhow(n: String) -> anyhow::Result<u32> {
    Ok(parse(&n)?)
}

fn main() {
    let _ = (WithTaskError::new("1".into()), WithAnyhow::new("1".into()));
}
