//! Several queues in one runtime; a runtime limited to some queues.

use std::time::{Duration, SystemTime};

use natask_runtime::{task, DeadLetterError, QueueError, State, TaskContext, TaskError, TaskState};
use tokio::sync::mpsc;

use crate::{builder, connect, queued, recv_n, Running, EVENT_DEADLINE};

pub(crate) struct Log(mpsc::UnboundedSender<(String, u32)>);

#[task(queue = "it_alpha")]
async fn alpha_job(log: State<Log>, ctx: &TaskContext, n: u32) -> Result<(), TaskError> {
    let _ = log.0.send((ctx.queue().to_owned(), n));
    Ok(())
}

#[task(queue = "it_beta")]
async fn beta_job(log: State<Log>, ctx: &TaskContext, n: u32) -> Result<(), TaskError> {
    let _ = log.0.send((ctx.queue().to_owned(), n));
    Ok(())
}

#[task(queue = "it_gamma")]
async fn gamma_job(log: State<Log>, ctx: &TaskContext, n: u32) -> Result<(), TaskError> {
    let _ = log.0.send((ctx.queue().to_owned(), n));
    Ok(())
}

#[task(queue = "it_dlq_select")]
async fn refused_first() -> Result<(), TaskError> {
    Err(TaskError::fatal("refused"))
}

#[task(queue = "it_dlq_select")]
async fn refused_second() -> Result<(), TaskError> {
    Err(TaskError::fatal("refused"))
}

#[tokio::test]
async fn a_runtime_limited_to_one_queue_leaves_the_others_untouched() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    for n in 0..10 {
        AlphaJob::new(n).enqueue(&client).await.unwrap();
        BetaJob::new(n).enqueue(&client).await.unwrap();
        GammaJob::new(n).enqueue(&client).await.unwrap();
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let only_alpha = Running::start(builder(&client, &["it_alpha"]).state(Log(tx.clone()))).await;
    let got = recv_n(&mut rx, 10).await;
    only_alpha.stop().await;
    assert!(got.iter().all(|(q, _)| q == "it_alpha"), "{got:?}");
    assert!(rx.try_recv().is_err());
    assert_eq!(queued(&client, "it_alpha").await, 0);
    assert_eq!(queued(&client, "it_beta").await, 10);
    assert_eq!(queued(&client, "it_gamma").await, 10);

    // one runtime serving three queues takes the rest
    let all =
        Running::start(builder(&client, &["it_alpha", "it_beta", "it_gamma"]).state(Log(tx))).await;
    let mut got = recv_n(&mut rx, 20).await;
    all.stop().await;
    assert!(rx.try_recv().is_err());
    got.sort();
    let mut want: Vec<_> = (0..10)
        .flat_map(|n| [("it_beta".to_owned(), n), ("it_gamma".to_owned(), n)])
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        queued(&client, "it_beta").await + queued(&client, "it_gamma").await,
        0
    );
}

#[tokio::test]
async fn the_runtime_reports_what_it_serves_and_provisions_streams_and_consumers() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let runtime = builder(&client, &["it_beta", "it_gamma"])
        .state(Log(tx))
        .build()
        .await
        .unwrap();
    let served: Vec<_> = runtime.queues().into_iter().collect();
    assert_eq!(
        served,
        [
            ("it_beta", vec!["beta_job"]),
            ("it_gamma", vec!["gamma_job"])
        ]
    );
    for queue in ["it_beta", "it_gamma"] {
        let stream = client
            .jetstream()
            .get_stream(format!("NATASK_Q_{queue}"))
            .await
            .unwrap();
        let info = stream.get_info().await.unwrap();
        assert_eq!(
            info.config.retention,
            async_nats::jetstream::stream::RetentionPolicy::WorkQueue
        );
        assert_eq!(
            info.config.subjects,
            [format!("natask.q.{queue}.>"), format!("natask.s.{queue}.>")]
        );
        assert!(info.config.allow_message_schedules);
        let consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer("workers").await.unwrap();
        let config = &consumer.cached_info().config;
        assert_eq!(config.durable_name.as_deref(), Some("workers"));
        assert_eq!(
            config.ack_policy,
            async_nats::jetstream::consumer::AckPolicy::Explicit
        );
    }
    assert!(
        client
            .jetstream()
            .get_stream("NATASK_Q_it_alpha")
            .await
            .is_err(),
        "unserved queue not created"
    );
}

#[tokio::test]
async fn queues_lists_the_queue_streams_under_the_prefix_and_info_dates_the_oldest_task() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    assert!(client.queues().await.unwrap().is_empty());
    assert!(matches!(
        client.queue("it_alpha").info().await,
        Err(QueueError::NoStream { .. })
    ));

    // The server's clock is this machine's, read with millisecond precision.
    let before = SystemTime::now() - Duration::from_millis(1);
    AlphaJob::new(1).enqueue(&client).await.unwrap();
    AlphaJob::new(2).enqueue(&client).await.unwrap();
    BetaJob::new(3).enqueue(&client).await.unwrap();
    // A delayed task's schedule is not a task the queue holds yet.
    GammaJob::new(4)
        .enqueue_in(&client, Duration::from_secs(3600))
        .await
        .unwrap();
    let after = SystemTime::now();

    assert_eq!(
        client.queues().await.unwrap(),
        ["it_alpha", "it_beta", "it_gamma"]
    );
    let other = client.clone().with_prefix("other").unwrap();
    assert!(other.queues().await.unwrap().is_empty(), "another prefix");

    let alpha = client.queue("it_alpha").info().await.unwrap();
    assert_eq!(alpha.depth, 2);
    let oldest = alpha.oldest_task_at.expect("alpha holds tasks");
    assert!(before <= oldest && oldest <= after, "{oldest:?}");
    let gamma = client.queue("it_gamma").info().await.unwrap();
    assert_eq!(gamma.oldest_task_at, None, "only a schedule");
}

#[tokio::test]
async fn dead_letters_are_selected_by_queue_and_task() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let running = Running::start(builder(&client, &["it_dlq_select"])).await;
    let ids = [
        RefusedFirst::new().enqueue(&client).await.unwrap().id,
        RefusedFirst::new().enqueue(&client).await.unwrap().id,
        RefusedSecond::new().enqueue(&client).await.unwrap().id,
    ];
    for id in ids {
        let done = client.wait(id, EVENT_DEADLINE).await.unwrap();
        assert_eq!(done.state, TaskState::Dead);
    }
    let dead = client.dead_letters();
    let ids_of = |letters: Vec<natask_runtime::DeadLetter>| {
        letters.into_iter().map(|l| l.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids_of(dead.list_matching(None, None, 0, 10).await.unwrap()),
        ids
    );
    assert_eq!(
        ids_of(
            dead.list_matching(None, Some("refused_first"), 0, 10)
                .await
                .unwrap()
        ),
        ids[..2]
    );
    assert_eq!(
        ids_of(
            dead.list_matching(Some("it_dlq_select"), Some("refused_second"), 0, 10)
                .await
                .unwrap()
        ),
        ids[2..]
    );
    assert!(dead
        .list_matching(Some("other_queue"), None, 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        dead.list_matching(Some("*"), None, 0, 10).await,
        Err(DeadLetterError::InvalidName { .. })
    ));

    assert_eq!(
        dead.purge_matching(None, Some("refused_first"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        ids_of(dead.list("it_dlq_select", 0, 10).await.unwrap()),
        ids[2..]
    );
    assert_eq!(dead.purge_matching(None, None).await.unwrap(), 1);
    running.stop().await;
}
