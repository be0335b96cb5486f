//! Several queues in one runtime; a runtime limited to some queues.

use natask_runtime::{task, State, TaskContext, TaskError};
use tokio::sync::mpsc;

use crate::{builder, connect, queued, recv_n, Running};

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
