//! Permission violations are reported as such, naming the refused subject:
//! NATS answers no request it refuses (it sends the connection `-ERR
//! 'Permissions Violation for Publish to "<subject>"'`), so without this an
//! enqueue or provisioning reads as a timeout. Tasks of allowed users are
//! unaffected and none is lost.

use std::time::Duration;

use natask_runtime::{task, Client, TaskError};
use natask_testing::NatsServer;

use crate::{builder, queued, whole};

#[task(queue = "it_perm")]
async fn permitted(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

#[task(queue = "it_perm_new")]
async fn never_created(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

/// `admin` may do anything; `publisher` may publish tasks but not call
/// the JetStream API; `nocreate` may do anything but create a stream.
const USERS: &str = r#"
authorization {
  users = [
    { user: admin, password: admin }
    { user: publisher, password: publisher, permissions: {
        publish: { allow: ["natask.q.>"] }
        subscribe: { allow: ["_INBOX.>"] } } }
    { user: nocreate, password: nocreate, permissions: {
        publish: { allow: [">"], deny: ["$JS.API.STREAM.CREATE.>"] }
        subscribe: { allow: [">"] } } }
  ]
}
"#;

async fn connect_as(server: &NatsServer, user: &str) -> Client {
    let url = format!("nats://{user}:{user}@127.0.0.1:{}", server.port());
    Client::connect(&url)
        .await
        .expect("connect")
        .with_timeout(Duration::from_secs(2))
}

#[tokio::test]
async fn a_producer_without_jetstream_api_access_is_told_the_subject() {
    let server = NatsServer::start_with_config(USERS);
    let admin = connect_as(&server, "admin").await;
    for n in 0..3 {
        Permitted { n }
            .enqueue(&admin)
            .await
            .expect("admin enqueues");
    }

    let publisher = connect_as(&server, "publisher").await;
    let err = Permitted { n: 99 }.enqueue(&publisher).await.unwrap_err();
    let text = whole(&err);
    assert!(text.contains("permission denied"), "{text}");
    assert!(
        text.contains("may not publish to `$JS.API.STREAM.INFO.NATASK_Q_it_perm`"),
        "{text}"
    );
    assert!(!text.contains("is NATS reachable"), "{text}");

    for n in 3..6 {
        Permitted { n }
            .enqueue(&admin)
            .await
            .expect("admin enqueues");
    }
    assert_eq!(
        queued(&admin, "it_perm").await,
        6,
        "every task of the admin is stored, none of the refused producer"
    );
}

#[tokio::test]
async fn a_denied_stream_create_is_reported_by_provisioning() {
    let server = NatsServer::start_with_config(USERS);
    let nocreate = connect_as(&server, "nocreate").await;
    let subject = "$JS.API.STREAM.CREATE.NATASK_Q_it_perm_new";

    let err = NeverCreated { n: 1 }.enqueue(&nocreate).await.unwrap_err();
    let text = whole(&err);
    assert!(text.contains("permission denied"), "{text}");
    assert!(
        text.contains(&format!("may not publish to `{subject}`")),
        "{text}"
    );

    let Err(err) = builder(&nocreate, &["it_perm_new"]).build().await else {
        panic!("a runtime that may not create its stream does not build");
    };
    let text = whole(&err);
    assert!(
        text.contains(&format!(
            "stream `NATASK_Q_it_perm_new` could not be created or found: permission denied: \
             the NATS user may not publish to `{subject}`"
        )),
        "{text}"
    );

    let admin = connect_as(&server, "admin").await;
    for n in 0..3 {
        NeverCreated { n }
            .enqueue(&admin)
            .await
            .expect("admin enqueues");
    }
    assert_eq!(queued(&admin, "it_perm_new").await, 3);
}
