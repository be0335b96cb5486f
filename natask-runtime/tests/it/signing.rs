//! Signed tasks: a runtime that requires signatures runs only tasks signed
//! by a key it trusts, and dead-letters the rest with a message that says
//! what was wrong; the tasks around them run.

use std::time::Duration;

use futures_util::StreamExt;
use natask_runtime::{task, SigningKey, State, TaskError};
use tokio::sync::mpsc;

use crate::{builder, connect, drained, header, publish_raw, recv_n, within, Running};

const QUEUE: &str = "it_sign";

pub(crate) struct Ran(mpsc::UnboundedSender<u32>);

#[task(queue = "it_sign")]
async fn signed_job(ran: State<Ran>, n: u32) -> Result<(), TaskError> {
    let _ = ran.0.send(n);
    Ok(())
}

#[task(queue = "it_sign_tick")]
async fn signed_tick(ran: State<Ran>, n: u32) -> Result<(), TaskError> {
    let _ = ran.0.send(n);
    Ok(())
}

#[tokio::test]
async fn only_tasks_signed_by_a_trusted_key_run_and_the_rest_are_dead_lettered_with_the_reason() {
    let server = natask_testing::NatsServer::start();
    let key = SigningKey::generate();
    let signed = connect(&server).await.with_signing_key(key.clone());
    let unsigned = connect(&server).await;
    let stranger = connect(&server)
        .await
        .with_signing_key(SigningKey::generate());

    let mut tap = signed.nats().subscribe("natask.q.it_sign.>").await.unwrap();
    SignedJob::new(1).enqueue(&signed).await.unwrap();
    let original = within(tap.next()).await.unwrap();
    let not_signed = SignedJob::new(2).enqueue(&unsigned).await.unwrap().id;
    SignedJob::new(3).enqueue(&stranger).await.unwrap();
    for stored in signed
        .enqueue_many([SignedJob::new(4), SignedJob::new(5)])
        .await
    {
        stored.unwrap();
    }
    signed
        .enqueue_in(&SignedJob::new(6), Duration::from_secs(1))
        .await
        .unwrap();
    // Task 1 as it was published, changed after signing: once its body,
    // once its id. Both are new messages to JetStream: the id its
    // `Nats-Msg-Id` carried (format 2) moves to `Natask-Id`.
    let headers_of = |id: Option<String>| {
        let mut kept = Vec::new();
        for (name, values) in original.headers.as_ref().unwrap().iter() {
            let name: &str = name.as_ref();
            let value = values[0].as_str().to_owned();
            match name {
                "Nats-Msg-Id" => kept.push(("Natask-Id".to_owned(), id.clone().unwrap_or(value))),
                _ => kept.push((name.to_owned(), value)),
            }
        }
        kept
    };
    let other_body = headers_of(None);
    let other_id = headers_of(Some(natask_runtime::TaskId::new().to_string()));
    for (headers, body) in [
        (other_body, &b"{\"n\":66}"[..]),
        (other_id, &original.payload[..]),
    ] {
        let borrowed: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        publish_raw(
            &signed,
            "natask.q.it_sign.signed_job",
            &borrowed,
            bytes::Bytes::copy_from_slice(body),
        )
        .await;
    }

    let mut dead = signed.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&signed, &[QUEUE])
            .state(Ran(tx))
            .require_signatures([key.public_key()]),
    )
    .await;
    let mut errors = Vec::new();
    for _ in 0..4 {
        let letter = within(dead.next()).await.unwrap();
        assert_eq!(header(&letter, "Natask-Reason"), "signature");
        errors.push(header(&letter, "Natask-Error"));
    }
    errors.sort();
    let key_id = key.public_key().id();
    assert_eq!(errors.len(), 4);
    let said = |what: &str| errors.iter().filter(|e| e.contains(what)).count();
    assert_eq!(said("is not signed"), 1, "{errors:#?}");
    assert_eq!(said("which this worker does not trust"), 1, "{errors:#?}");
    assert_eq!(said("were changed after it was signed"), 2, "{errors:#?}");
    assert!(errors.iter().all(|e| e.contains(&key_id)), "{errors:#?}");

    let mut ran = recv_n(&mut rx, 4).await;
    ran.sort_unstable();
    assert_eq!(ran, [1, 4, 5, 6]);
    drained(&signed, QUEUE).await;
    running.stop().await;
    assert!(rx.try_recv().is_err(), "a refused task ran");
    // The refused message was not trusted to name a task: no state was
    // written for the unsigned task's id (and its message is gone).
    assert_eq!(signed.task_info(not_signed).await.unwrap(), None);
}

#[tokio::test]
async fn signed_recurring_schedules_tick_past_a_runtime_that_requires_signatures() {
    let server = natask_testing::NatsServer::start();
    let key = SigningKey::generate();
    let client = connect(&server).await.with_signing_key(key.clone());
    let ticks = client.recurring::<SignedTick>();
    ticks
        .set("every-second", "@every 1s", &SignedTick::new(7))
        .await
        .unwrap();
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        builder(&client, &["it_sign_tick"])
            .state(Ran(tx))
            .require_signatures([key.public_key()]),
    )
    .await;
    // A tick carries no `Natask-Id`; it was signed without one.
    assert_eq!(recv_n(&mut rx, 2).await, [7, 7]);
    assert!(ticks.remove("every-second").await.unwrap());
    running.stop().await;
    assert!(
        tokio::time::timeout(Duration::ZERO, dead.next())
            .await
            .is_err(),
        "a signed tick was dead-lettered"
    );
}
