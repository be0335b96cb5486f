//! Payloads that change across deploys (`docs/evolution.md`): an older
//! payload is upgraded by the task's `upgrade` function, compatible
//! changes need no version, and a payload newer than the worker's handler
//! is handed back, then dead-lettered with a reason that says so.

use std::time::Duration;

use futures_util::StreamExt;
use natask_runtime::{task, State, TaskContext, TaskError, TaskId};
use tokio::sync::mpsc;

use crate::{builder, connect, drained, header, publish_raw, recv_n, within, Running};

const QUEUE: &str = "it_evolve";

pub(crate) struct Seen(mpsc::UnboundedSender<String>);

/// Version 2 splits version 1's `name` into `first` and `last`.
#[task(queue = "it_evolve", version = 2, upgrade = upgrade_welcome)]
async fn welcome(
    seen: State<Seen>,
    ctx: &TaskContext,
    first: String,
    last: String,
) -> Result<(), TaskError> {
    let _ = seen
        .0
        .send(format!("welcome {first}/{last} v{}", ctx.version()));
    Ok(())
}

fn upgrade_welcome(version: u32, old: serde_json::Value) -> Result<Welcome, TaskError> {
    match version {
        1 => {
            let name = old["name"]
                .as_str()
                .ok_or_else(|| TaskError::fatal("a version 1 welcome has a `name`"))?;
            let (first, last) = name.split_once(' ').unwrap_or((name, ""));
            Ok(Welcome::new(first.to_owned(), last.to_owned()))
        }
        other => Err(TaskError::fatal(format!("no upgrade from version {other}"))),
    }
}

/// Changed compatibly, so still version 1: `customer` was `customer_id`
/// (the alias reads the old name) and `note` is new (optional).
#[task(queue = "it_evolve")]
async fn invoice(
    seen: State<Seen>,
    #[serde(alias = "customer_id")] customer: u64,
    note: Option<String>,
) -> Result<(), TaskError> {
    let _ = seen.0.send(format!("invoice {customer} {note:?}"));
    Ok(())
}

/// A task message as an older (or newer) producer published it.
async fn publish_as(
    client: &natask_runtime::Client,
    task: &str,
    version: Option<&str>,
    body: &'static [u8],
) -> TaskId {
    let id = TaskId::new();
    let id_text = id.to_string();
    let mut headers = vec![
        ("Natask-Task", task),
        ("Natask-Id", id_text.as_str()),
        ("Nats-Msg-Id", id_text.as_str()),
        ("Natask-Format", "1"),
    ];
    if let Some(version) = version {
        headers.push(("Natask-Version", version));
    }
    publish_raw(client, &format!("natask.q.{QUEUE}.{task}"), &headers, body).await;
    id
}

#[tokio::test]
async fn older_payloads_are_upgraded_and_compatible_changes_need_no_version() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    Invoice::new(1, None).enqueue(&client).await.unwrap(); // creates the stream
    let mut letters = client.nats().subscribe("natask.dlq.>").await.unwrap();
    // What producers of the last deploy still send.
    publish_as(&client, "welcome", None, br#"{"name":"Ada Lovelace"}"#).await;
    let unreadable = publish_as(&client, "welcome", Some("1"), br#"{"nom":"Ada"}"#).await;
    publish_as(&client, "invoice", None, br#"{"customer_id":7}"#).await;
    // What this deploy sends.
    Welcome::new("Grace".into(), "Hopper".into())
        .enqueue(&client)
        .await
        .unwrap();
    Invoice::new(8, Some("paid".into()))
        .enqueue(&client)
        .await
        .unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &[QUEUE]).state(Seen(tx))).await;
    let mut seen = recv_n(&mut rx, 5).await;
    seen.sort();
    assert_eq!(
        seen,
        [
            "invoice 1 None",
            "invoice 7 None",
            "invoice 8 Some(\"paid\")",
            "welcome Ada/Lovelace v1",
            "welcome Grace/Hopper v2",
        ]
    );
    // An old payload the upgrade cannot read is a decode failure.
    let letter = within(letters.next()).await.unwrap();
    assert_eq!(header(&letter, "Natask-Reason"), "decode");
    assert_eq!(header(&letter, "Natask-Id"), unreadable.to_string());
    assert_eq!(
        header(&letter, "Natask-Error"),
        "payload of version 1 could not be upgraded: a version 1 welcome has a `name`"
    );
    drained(&client, QUEUE).await;
    running.stop().await;
    assert!(rx.try_recv().is_err(), "nothing else ran");
}

#[tokio::test]
async fn a_payload_newer_than_the_handler_is_handed_back_then_dead_lettered() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    Invoice::new(1, None).enqueue(&client).await.unwrap();
    let mut letters = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let newer = publish_as(&client, "welcome", Some("3"), br#"{"given":"Ada"}"#).await;
    let nonsense = publish_as(
        &client,
        "welcome",
        Some("two"),
        br#"{"first":"A","last":"B"}"#,
    )
    .await;
    Invoice::new(2, None).enqueue(&client).await.unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let runtime = builder(&client, &[QUEUE])
        .state(Seen(tx))
        .unknown_task_grace(3, Duration::from_millis(50));
    let running = Running::start(runtime).await;
    let mut ran = recv_n(&mut rx, 2).await;
    ran.sort();
    assert_eq!(ran, ["invoice 1 None", "invoice 2 None"]);
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let letter = within(letters.next()).await.unwrap();
        reasons.push((
            header(&letter, "Natask-Id"),
            header(&letter, "Natask-Reason"),
            header(&letter, "Natask-Error"),
        ));
    }
    reasons.sort();
    let expected_newer = (
        newer.to_string(),
        "unknown_version".to_owned(),
        "task `welcome` on queue `it_evolve` has a payload of version 3, newer than the version 2 \
         this worker's handler reads, and no worker took it after 3 deliveries; deploy the worker \
         that reads it, then replay the dead letter"
            .to_owned(),
    );
    let found_newer = reasons.iter().find(|r| r.0 == expected_newer.0).unwrap();
    assert_eq!(found_newer, &expected_newer);
    let found_nonsense = reasons
        .iter()
        .find(|r| r.0 == nonsense.to_string())
        .unwrap();
    assert_eq!(found_nonsense.1, "not_a_task");
    assert!(
        found_nonsense.2.contains("is not a payload version"),
        "{}",
        found_nonsense.2
    );
    drained(&client, QUEUE).await;
    running.stop().await;
    assert!(rx.try_recv().is_err(), "neither ran");
}
