//! The tasks of the example application.
//!
//! They live in a library so that the producer (which enqueues them) and the
//! worker (which runs them) share one definition: the payload structs and
//! their `enqueue` methods are generated from these functions.

use std::time::Duration;

use natask_runtime::{event, subscribe, task, TaskContext, TaskError};
use serde::{Deserialize, Serialize};

/// Where a resized image should go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// Width in pixels.
    pub width: u32,
    /// Output format.
    pub format: Format,
}

/// Image formats.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Format {
    /// PNG.
    Png,
    /// WebP with a quality.
    Webp {
        /// 0-100.
        quality: u8,
    },
}

/// Sends an email (here: prints it).
#[task(queue = "emails", retries = 3, timeout = "30s")]
pub async fn send_email(ctx: &TaskContext, to: String, subject: String) -> Result<(), TaskError> {
    tokio::time::sleep(Duration::from_millis(5)).await; // talking to the SMTP server
    println!(
        "handled send_email id={} attempt={} to={to} subject={subject:?}",
        ctx.id(),
        ctx.attempt()
    );
    Ok(())
}

/// Resizes an image and returns where the result went.
#[task(queue = "images", retries = 1)]
pub async fn resize_image(
    ctx: &TaskContext,
    url: String,
    target: Target,
) -> Result<String, TaskError> {
    if url.is_empty() {
        return Err(TaskError::fatal("an empty URL can never be fetched"));
    }
    let out = format!("{url}@{}w", target.width);
    println!(
        "handled resize_image id={} attempt={} url={url} width={} format={:?}",
        ctx.id(),
        ctx.attempt(),
        target.width,
        target.format
    );
    Ok(out)
}

/// A user signed up: an event every interested service handles once.
#[event(retention = "1d")]
pub struct UserSignedUp {
    /// The new user's address.
    pub email: String,
}

/// The mailer service greets the new user (here: prints it).
#[subscribe(service = "mailer", retries = 3)]
pub async fn greet(ctx: &TaskContext, user: UserSignedUp) -> Result<(), TaskError> {
    println!(
        "handled event user_signed_up in service mailer id={} email={}",
        ctx.id(),
        user.email
    );
    Ok(())
}

/// The analytics service counts sign-ups (here: prints it).
#[subscribe(service = "analytics", start = "all")]
pub async fn count_signup(ctx: &TaskContext, user: UserSignedUp) -> Result<(), TaskError> {
    println!(
        "handled event user_signed_up in service analytics id={} email={}",
        ctx.id(),
        user.email
    );
    Ok(())
}
