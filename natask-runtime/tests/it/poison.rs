//! Bad input is parked with a readable error, and loses nothing else.

use futures_util::StreamExt;
use natask_runtime::{task, EnqueueError, State, TaskError, TaskId};
use tokio::sync::mpsc;

use crate::{builder, connect, queued, within, Running};

pub(crate) struct Got(mpsc::UnboundedSender<u64>);

#[task(queue = "it_poison")]
async fn count(got: State<Got>, n: u64) -> Result<(), TaskError> {
    let _ = got.0.send(n);
    Ok(())
}

#[task(queue = "it_poison")]
async fn blob(data: String) -> Result<(), TaskError> {
    let _ = data;
    Ok(())
}

async fn publish_raw(
    client: &natask_runtime::Client,
    headers: &[(&str, &str)],
    body: &'static [u8],
) {
    crate::publish_raw(client, "natask.q.it_poison.count", headers, body).await;
}

#[tokio::test]
async fn undecodable_and_headerless_messages_are_parked_and_the_next_task_is_handled() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    Count::new(1).enqueue(&client).await.unwrap(); // creates the stream
    let bad_json = TaskId::new().to_string();
    let wrong_shape = TaskId::new().to_string();
    publish_raw(
        &client,
        &[("Natask-Task", "count"), ("Natask-Id", &bad_json)],
        b"{not json",
    )
    .await;
    publish_raw(
        &client,
        &[("Natask-Task", "count"), ("Natask-Id", &wrong_shape)],
        b"{\"n\":\"seven\"}",
    )
    .await;
    publish_raw(&client, &[], b"{\"n\":3}").await;
    Count::new(2).enqueue(&client).await.unwrap();

    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_poison"]).state(Got(tx))).await;
    let mut letters = Vec::new();
    for _ in 0..3 {
        letters.push(within(dead.next()).await.unwrap());
    }
    let mut handled = vec![
        within(rx.recv()).await.unwrap(),
        within(rx.recv()).await.unwrap(),
    ];
    running.stop().await;
    handled.sort();
    assert_eq!(
        handled,
        [1, 2],
        "the valid tasks around the bad ones were handled"
    );
    assert_eq!(
        queued(&client, "it_poison").await,
        0,
        "bad messages left the work queue"
    );

    let header = |m: &async_nats::Message, n: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(n))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    let by_id = |id: &str| {
        letters
            .iter()
            .find(|m| header(m, "Natask-Id") == id)
            .expect("dead letter present")
    };
    let bad = by_id(&bad_json);
    assert_eq!(header(bad, "Natask-Reason"), "decode");
    assert_eq!(&*bad.payload, b"{not json", "the original payload is kept");
    assert!(
        header(bad, "Natask-Error").starts_with("payload does not decode: key must be a string"),
        "{}",
        header(bad, "Natask-Error")
    );
    assert_eq!(header(bad, "Natask-Queue"), "it_poison");
    assert_eq!(header(bad, "Natask-Attempts"), "1");
    assert!(
        header(bad, "Nats-Msg-Id").starts_with(&format!("{bad_json}:dlq:")),
        "{}",
        header(bad, "Nats-Msg-Id")
    );
    assert_eq!(
        bad.subject.as_str(),
        format!("natask.dlq.it_poison.count.{bad_json}")
    );
    let shape = by_id(&wrong_shape);
    assert_eq!(header(shape, "Natask-Reason"), "decode");
    assert!(
        header(shape, "Natask-Error").contains("invalid type: string \"seven\", expected u64"),
        "{}",
        header(shape, "Natask-Error")
    );
    let headerless = letters
        .iter()
        .find(|m| header(m, "Natask-Reason") == "not_a_task")
        .expect("headerless parked");
    assert!(
        header(headerless, "Natask-Error").starts_with("the message has no `Natask-Task` header")
    );
    assert_eq!(&*headerless.payload, b"{\"n\":3}");

    // and they are stored, browsable, in the dead-letter stream
    let dlq = client.jetstream().get_stream("NATASK_DLQ").await.unwrap();
    assert_eq!(dlq.get_info().await.unwrap().state.messages, 3);
}

#[tokio::test]
async fn an_oversized_task_is_refused_at_enqueue_naming_the_limit() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    Blob::new("small".into()).enqueue(&client).await.unwrap();
    let err = Blob::new("x".repeat(1024 * 1024))
        .enqueue(&client)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EnqueueError::TooLarge {
                task: "blob",
                limit: 1_048_576,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("task `blob` is 10"), "{text}");
    assert!(
        text.contains("more than the server's limit of 1048576 bytes (max_payload)"),
        "{text}"
    );
    assert_eq!(
        queued(&client, "it_poison").await,
        1,
        "only the small task was stored"
    );
}

#[tokio::test]
async fn a_poison_task_too_large_for_a_dead_letter_is_parked_cut_and_leaves_the_queue() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    Count::new(1).enqueue(&client).await.unwrap(); // creates the stream
    let limit = client.nats().server_info().max_payload;
    // just under max_payload: fits the queue, not beside a dead letter's headers
    let id = TaskId::new();
    let mut body = vec![b'{'];
    body.resize(limit - 200, b'x');
    let body_len = body.len();
    let id_text = id.to_string();
    let headers = [("Natask-Task", "count"), ("Natask-Id", id_text.as_str())];
    crate::publish_raw(&client, "natask.q.it_poison.count", &headers, body).await;
    Count::new(2).enqueue(&client).await.unwrap();

    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_poison"]).state(Got(tx))).await;
    let letter = within(dead.next()).await.unwrap();
    let mut handled = vec![
        within(rx.recv()).await.unwrap(),
        within(rx.recv()).await.unwrap(),
    ];
    handled.sort();
    assert_eq!(handled, [1, 2], "the tasks around it ran");
    crate::drained(&client, "it_poison").await;
    running.stop().await;

    let header = |n: &str| crate::header(&letter, n);
    assert_eq!(header("Natask-Id"), id.to_string());
    assert_eq!(header("Natask-Reason"), "decode");
    assert_eq!(
        header("Natask-Truncated"),
        body_len.to_string(),
        "says it was cut, from what size"
    );
    assert!(letter.payload.len() < body_len && letter.payload.starts_with(b"{xxx"));
    let info = client
        .task_info(id)
        .await
        .unwrap()
        .expect("its state is kept");
    assert_eq!(info.state, natask_runtime::TaskState::Dead);
    assert!(
        info.last_error
            .as_deref()
            .unwrap_or_default()
            .starts_with("payload does not decode"),
        "{info:?}"
    );
    // a cut body cannot go back to the queue
    let err = client
        .dead_letters()
        .replay(id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("its body was cut to fit the server's max_payload"),
        "{err}"
    );
}
