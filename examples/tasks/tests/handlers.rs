//! The example tasks' handlers, run without a server with
//! `natask_runtime::testing::perform`.

use natask_example_tasks::{Format, ResizeImage, SendEmail, Target};
use natask_runtime::testing::{self, DeadReason, Next};

fn image(url: &str) -> ResizeImage {
    ResizeImage::new(
        url.into(),
        Target {
            width: 320,
            format: Format::Png,
        },
    )
}

#[tokio::test]
async fn resize_image_returns_where_the_result_went() {
    let performed = testing::perform(image("https://img.example.com/1.jpg")).await;
    assert_eq!(
        performed.output::<String>(),
        "https://img.example.com/1.jpg@320w"
    );
    assert_eq!(performed.next, Next::Done);
}

#[tokio::test]
async fn an_empty_url_is_dead_at_once() {
    let performed = testing::perform(image("")).await;
    assert_eq!(
        performed.next,
        Next::Dead {
            reason: DeadReason::Fatal,
            error: "an empty URL can never be fetched".into()
        }
    );
}

#[tokio::test]
async fn send_email_has_four_attempts() {
    let performed = testing::perform(SendEmail::new("ada@example.com".into(), "Hi".into()))
        .attempt(4)
        .await;
    assert!(performed.is_ok());
    assert_eq!(performed.max_attempts, 4);
}
