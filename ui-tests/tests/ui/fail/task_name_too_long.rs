use natask_runtime::task;

#[task(name = "send_the_weekly_newsletter_to_every_subscriber_who_asked_for_it_in_2024")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
