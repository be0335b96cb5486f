//! Cron tasks: one server-side schedule per task, one run per tick for the
//! whole fleet, replaced when the expression changes, removed with the task.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::HeaderMap;
use futures_util::TryStreamExt;
use natask_runtime::{
    task, BuildError, Client, CronError, Runtime, State, TaskContext, TaskError, TaskId,
};
use tokio::sync::mpsc;

use crate::{builder, connect, drained, older_server, within, Running};

const QUEUE: &str = "it_cron";
const SUBJECT: &str = "natask.s.it_cron.cron_tick.cron";

/// One run of the cron task, as its handler saw it.
#[derive(Debug)]
pub(crate) struct Tick {
    id: TaskId,
    scheduler: Option<String>,
}

pub(crate) struct Ticks(mpsc::UnboundedSender<Tick>);

#[task(queue = "it_cron", cron = "@every 1s")]
async fn cron_tick(ticks: State<Ticks>, ctx: &TaskContext) {
    let _ = ticks.0.send(Tick {
        id: ctx.id(),
        scheduler: ctx.headers().get("Nats-Scheduler").map(str::to_owned),
    });
}

/// Another task of the same queue, served alone to drop the cron task.
#[task(queue = "it_cron")]
async fn cron_other() {}

pub(crate) struct Attempts(mpsc::UnboundedSender<(TaskId, u32)>);

/// Fails the first attempt of every tick.
#[task(
    queue = "it_cron_retry",
    cron = "@every 1s",
    retries = 1,
    backoff = "fixed(0s)"
)]
async fn cron_flaky(attempts: State<Attempts>, ctx: &TaskContext) -> Result<(), TaskError> {
    let _ = attempts.0.send((ctx.id(), ctx.attempt()));
    if ctx.attempt() == 1 {
        return Err(TaskError::retry("the first attempt fails"));
    }
    Ok(())
}

/// The cron schedule subjects stored in the queue's stream, with their
/// message counts.
async fn cron_schedules(client: &Client) -> Vec<(String, usize)> {
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(QUEUE))
        .await
        .expect("queue stream exists");
    stream
        .info_with_subjects(client.names().cron_filter(QUEUE))
        .await
        .expect("stream info")
        .try_collect()
        .await
        .expect("subjects")
}

async fn stored_schedule(client: &Client) -> (u64, HeaderMap) {
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(QUEUE))
        .await
        .expect("queue stream exists");
    let msg = stream
        .direct_get_last_for_subject(SUBJECT)
        .await
        .expect("the cron schedule is stored");
    (msg.sequence, msg.headers)
}

/// Counts the ticks received during `window`.
async fn count_for(rx: &mut mpsc::UnboundedReceiver<Tick>, window: Duration) -> Vec<Tick> {
    let end = tokio::time::Instant::now() + window;
    let mut got = Vec::new();
    while let Ok(Some(tick)) = tokio::time::timeout_at(end, rx.recv()).await {
        got.push(tick);
    }
    got
}

#[tokio::test]
async fn three_runtimes_run_an_every_second_cron_task_once_per_tick_until_it_is_dropped() {
    let server = natask_testing::NatsServer::start();
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Three workers, each with its own connection, as three processes would.
    let mut clients = Vec::new();
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let client = connect(&server).await;
        fleet.push(Running::start(builder(&client, &[QUEUE]).state(Ticks(tx.clone()))).await);
        clients.push(client);
    }
    let client = &clients[0];
    assert_eq!(
        cron_schedules(client).await,
        [(SUBJECT.to_owned(), 1)],
        "one schedule for the fleet"
    );
    let (_, headers) = stored_schedule(client).await;
    assert_eq!(headers.get("Nats-Schedule").unwrap().as_str(), "@every 1s");
    assert!(headers.get("Natask-Id").is_none() && headers.get("Nats-Msg-Id").is_none());

    // Start counting at a tick, so the window holds whole intervals.
    let first = within(rx.recv()).await.expect("sender alive");
    let window = Duration::from_secs(10);
    let ticks = count_for(&mut rx, window).await;
    assert!(
        (9..=11).contains(&ticks.len()),
        "{} runs in {window:?} of `@every 1s` across 3 runtimes",
        ticks.len()
    );
    let ids: HashSet<TaskId> = ticks.iter().chain([&first]).map(|t| t.id).collect();
    assert_eq!(ids.len(), ticks.len() + 1, "every tick has its own task id");
    assert!(ticks
        .iter()
        .all(|t| t.scheduler.as_deref() == Some(SUBJECT)));

    // A runtime serving the queue without the cron task owns the queue's
    // schedules, so it removes the stale one as it starts.
    let other = connect(&server).await;
    let dropped = Running::start(
        Runtime::builder(other.clone())
            .only_registered()
            .register::<CronOther>(),
    )
    .await;
    assert!(cron_schedules(&other).await.is_empty(), "schedule purged");
    // Ticks stored before the purge still run; wait until the fleet has
    // taken them all (work-queue stream: a finished task leaves it).
    drained(&other, QUEUE).await;
    while rx.try_recv().is_ok() {}
    // Absence can only be shown over a bounded window: three intervals of
    // the removed schedule.
    let late = count_for(&mut rx, Duration::from_secs(3)).await;
    assert!(
        late.is_empty(),
        "ran after its schedule was removed: {late:?}"
    );

    dropped.stop().await;
    for running in fleet {
        running.stop().await;
    }
}

#[tokio::test]
async fn a_changed_expression_replaces_the_schedule_and_an_unchanged_one_is_kept() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    // What an earlier deploy with `cron = "@hourly"` left behind.
    let stream = client
        .jetstream()
        .create_stream(natask_runtime_stream_config())
        .await
        .expect("queue stream");
    drop(stream);
    let mut old = HeaderMap::new();
    old.insert("Nats-Schedule", "@hourly");
    old.insert("Nats-Schedule-Target", "natask.q.it_cron.cron_tick");
    old.insert("Natask-Task", "cron_tick");
    client
        .jetstream()
        .publish_with_headers(SUBJECT, old, "null".into())
        .await
        .unwrap()
        .await
        .expect("old schedule stored");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = Running::start(builder(&client, &[QUEUE]).state(Ticks(tx.clone()))).await;
    assert_eq!(cron_schedules(&client).await, [(SUBJECT.to_owned(), 1)]);
    let (seq, headers) = stored_schedule(&client).await;
    assert_eq!(headers.get("Nats-Schedule").unwrap().as_str(), "@every 1s");
    within(rx.recv()).await.expect("the new expression ticks");

    // Publishing it again would restart the interval; a second runtime
    // finds it in place and leaves it.
    let second = Running::start(builder(&client, &[QUEUE]).state(Ticks(tx))).await;
    assert_eq!(stored_schedule(&client).await.0, seq, "not republished");

    second.stop().await;
    first.stop().await;
}

/// The queue stream as natask creates it (with schedules allowed), made
/// here before any runtime so that a stale schedule can be planted.
fn natask_runtime_stream_config() -> async_nats::jetstream::stream::Config {
    async_nats::jetstream::stream::Config {
        name: "NATASK_Q_it_cron".into(),
        subjects: vec!["natask.q.it_cron.>".into(), "natask.s.it_cron.>".into()],
        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        allow_direct: true,
        allow_message_schedules: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_retried_tick_keeps_its_id() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &["it_cron_retry"]).state(Attempts(tx))).await;
    let (first, attempt) = within(rx.recv()).await.expect("sender alive");
    assert_eq!(attempt, 1);
    // Other ticks interleave; wait for the retry of the first one.
    let mut seen: HashMap<TaskId, Vec<u32>> = HashMap::from([(first, vec![1])]);
    while seen[&first].len() < 2 {
        let (id, attempt) = within(rx.recv()).await.expect("sender alive");
        seen.entry(id).or_default().push(attempt);
    }
    assert_eq!(
        seen[&first],
        [1, 2],
        "the retry of a tick has the tick's id"
    );
    assert!(
        seen.values().all(|a| a[0] == 1),
        "every other id is a new tick: {seen:?}"
    );
    running.stop().await;
}

/// Needs `NATS_SERVER_2_12_BIN`, a nats-server 2.12 binary (schedules, but
/// only `@at`): `scripts/dev test` installs one into `target/` with pip and
/// sets it. A bare `cargo test` without it prints "skipped" here.
#[tokio::test]
async fn a_server_before_2_14_refuses_cron_and_the_build_says_why() {
    let Some(server) = older_server("NATS_SERVER_2_12_BIN") else {
        return;
    };
    let client = connect(&server).await;
    let version = client.nats().server_info().version;
    assert!(version.starts_with("2.12."), "{version}");
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = builder(&client, &[QUEUE])
        .state(Ticks(tx))
        .build()
        .await
        .expect_err("the build fails");
    assert!(
        matches!(
            &err,
            BuildError::Cron(CronError::Refused {
                task: "cron_tick",
                cron: "@every 1s",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "nats-server {version} refuses the schedule `@every 1s` of cron task `cron_tick` on queue \
             `it_cron`; cron and `@every` schedules need nats-server 2.14 or newer, and a date that \
             never occurs is refused by all"
        )
    );
    assert!(
        cron_schedules(&client).await.is_empty(),
        "nothing was stored"
    );
}

#[task(
    queue = "it_cron_zone",
    cron = "0 0 6 * * *",
    time_zone = "Europe/Berlin"
)]
async fn berlin_morning() {}

#[task(
    queue = "it_cron_zone_unknown",
    cron = "0 0 6 * * *",
    time_zone = "Mars/Olympus_Mons"
)]
async fn martian_morning() {}

#[tokio::test]
async fn a_time_zone_goes_with_the_schedule_and_an_unknown_one_fails_the_build() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let running = Running::start(builder(&client, &["it_cron_zone"])).await;
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream("it_cron_zone"))
        .await
        .expect("queue stream exists");
    let stored = stream
        .direct_get_last_for_subject("natask.s.it_cron_zone.berlin_morning.cron")
        .await
        .expect("the cron schedule is stored");
    assert_eq!(
        stored.headers.get("Nats-Schedule").unwrap().as_str(),
        "0 0 6 * * *"
    );
    assert_eq!(
        stored
            .headers
            .get("Nats-Schedule-Time-Zone")
            .unwrap()
            .as_str(),
        "Europe/Berlin"
    );
    running.stop().await;

    // The name has the right form, so only the server can say it is unknown.
    let err = builder(&client, &["it_cron_zone_unknown"])
        .build()
        .await
        .expect_err("the build fails");
    assert!(
        matches!(
            &err,
            BuildError::Cron(CronError::TimeZone {
                time_zone: "Mars/Olympus_Mons",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "nats-server does not know the time zone `Mars/Olympus_Mons` of cron task `martian_morning` \
         on queue `it_cron_zone_unknown`; write an IANA name from its time-zone database, such as \
         `Europe/Berlin` or `UTC`"
    );
}
