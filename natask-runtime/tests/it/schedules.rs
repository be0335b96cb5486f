//! Recurring schedules made at run time: `client.recurring::<T>()` and its
//! `set`, `remove` and `list`.

use std::collections::{HashMap, HashSet};

use natask_runtime::{task, Client, Cron, RecurringError, State, TaskContext, TaskId};
use tokio::sync::mpsc;

use crate::{builder, connect, older_server, within, Running};

const QUEUE: &str = "it_sched";

/// One tick, as the handler saw it.
#[derive(Debug)]
pub(crate) struct Ran {
    id: TaskId,
    tenant: String,
    scheduler: Option<String>,
}

pub(crate) struct Runs(mpsc::UnboundedSender<Ran>);

#[task(queue = "it_sched")]
async fn tenant_report(runs: State<Runs>, ctx: &TaskContext, tenant: String) {
    let _ = runs.0.send(Ran {
        id: ctx.id(),
        tenant,
        scheduler: ctx.headers().get("Nats-Scheduler").map(str::to_owned),
    });
}

/// A cron task of the same queue: the runtime that serves the queue puts
/// its schedule in place and removes stale cron schedules, and must leave
/// the run-time ones alone.
#[task(queue = "it_sched", cron = "@yearly")]
async fn sched_static() {}

/// The stream sequence of the stored schedule `key`.
async fn stored_sequence(client: &Client, key: &str) -> u64 {
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(QUEUE))
        .await
        .unwrap();
    stream
        .direct_get_last_for_subject(client.names().keyed_schedule_subject(
            QUEUE,
            "tenant_report",
            key,
        ))
        .await
        .unwrap()
        .sequence
}

#[tokio::test]
async fn schedules_made_at_run_time_tick_with_their_payload_beside_cron_tasks() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let reports = client.recurring::<TenantReport>();
    for tenant in ["acme", "globex"] {
        reports
            .set(tenant, "@every 1s", &TenantReport::new(tenant.into()))
            .await
            .unwrap();
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &[QUEUE]).state(Runs(tx))).await;
    // the runtime put the cron task's schedule in place and kept ours
    let listed: Vec<_> = reports
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.key, s.cron.expression().to_owned(), s.task.tenant))
        .collect();
    assert_eq!(
        listed,
        [
            ("acme".into(), "@every 1s".into(), "acme".into()),
            ("globex".into(), "@every 1s".into(), "globex".into()),
        ] as [(String, String, String); 2]
    );

    // two ticks of each tenant, each tick its own task
    let mut runs: HashMap<String, usize> = HashMap::new();
    let mut ids = HashSet::new();
    while runs.len() < 2 || runs.values().any(|n| *n < 2) {
        let ran = within(rx.recv()).await.unwrap();
        assert_eq!(
            ran.scheduler.as_deref(),
            Some(
                client
                    .names()
                    .keyed_schedule_subject(QUEUE, "tenant_report", &ran.tenant)
                    .as_str()
            )
        );
        assert!(ids.insert(ran.id), "a tick ran twice");
        *runs.entry(ran.tenant).or_default() += 1;
    }

    // removed: no tick of acme is produced any more (the ones stored
    // before may still run); globex goes on
    assert!(reports.remove("acme").await.unwrap());
    assert!(!reports.remove("acme").await.unwrap());
    let keys: Vec<_> = reports
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(keys, ["globex"]);
    running.stop().await;
}

#[tokio::test]
async fn storing_a_key_again_replaces_it_and_an_unchanged_one_is_not_resent() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let reports = client.recurring::<TenantReport>();
    reports
        .set("acme", "@hourly", &TenantReport::new("acme".into()))
        .await
        .unwrap();
    let first = stored_sequence(&client, "acme").await;
    // unchanged: not published again (that would restart an interval)
    reports
        .set("acme", "@hourly", &TenantReport::new("acme".into()))
        .await
        .unwrap();
    assert_eq!(stored_sequence(&client, "acme").await, first);

    reports
        .set("acme", "0 0 6 * * *", &TenantReport::new("acme-2".into()))
        .await
        .unwrap();
    assert!(stored_sequence(&client, "acme").await > first);
    let listed = reports.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].key.as_str(),
            listed[0].cron.expression(),
            listed[0].task.tenant.as_str()
        ),
        ("acme", "0 0 6 * * *", "acme-2")
    );
    // one message for the key: the server keeps the newest schedule only
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(QUEUE))
        .await
        .unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.state.messages, 1);

    // a time zone is part of the schedule: a change replaces it
    let before = stored_sequence(&client, "acme").await;
    reports
        .set(
            "acme",
            Cron::new("0 0 6 * * *").with_time_zone("Europe/Berlin"),
            &TenantReport::new("acme-2".into()),
        )
        .await
        .unwrap();
    assert!(stored_sequence(&client, "acme").await > before);
    let listed = reports.list().await.unwrap();
    assert_eq!(listed[0].cron.time_zone(), Some("Europe/Berlin"));
    // a zone the server does not know: refused, the stored one is kept
    let err = reports
        .set(
            "acme",
            Cron::new("0 0 6 * * *").with_time_zone("Mars/Olympus_Mons"),
            &TenantReport::new("acme-2".into()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RecurringError::TimeZone { time_zone, .. } if time_zone == "Mars/Olympus_Mons"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("does not know the time zone"),
        "{err}"
    );
    let listed = reports.list().await.unwrap();
    assert_eq!(listed[0].cron.time_zone(), Some("Europe/Berlin"));
}

#[tokio::test]
async fn bad_keys_and_expressions_are_refused_before_anything_is_sent() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let reports = client.recurring::<TenantReport>();
    let task = TenantReport::new("acme".into());
    let err = reports.set("acme.eu", "@daily", &task).await.unwrap_err();
    assert!(
        matches!(&err, RecurringError::Key { key, .. } if key == "acme.eu"),
        "{err:?}"
    );
    let err = reports.set("acme", "*/5 * * * *", &task).await.unwrap_err();
    assert!(matches!(&err, RecurringError::Cron { .. }), "{err:?}");
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("nats-server cron has a seconds field first"),
        "{err}"
    );
    let err = reports
        .set("acme", Cron::new("@every 1h").with_time_zone("UTC"), &task)
        .await
        .unwrap_err();
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("fixed interval"),
        "{err}"
    );
    // nothing was created
    assert!(client
        .jetstream()
        .get_stream(client.names().queue_stream(QUEUE))
        .await
        .is_err());
    assert!(reports.list().await.unwrap().is_empty());
    assert!(!reports.remove("acme").await.unwrap());
}

/// Needs `NATS_SERVER_2_12_BIN`, a nats-server 2.12 binary (`scripts/dev
/// test` installs one); prints "skipped" without it.
#[tokio::test]
async fn a_server_before_2_14_refuses_the_expression_with_a_clear_error() {
    let Some(server) = older_server("NATS_SERVER_2_12_BIN") else {
        return;
    };
    let client = connect(&server).await;
    let reports = client.recurring::<TenantReport>();
    let version = client.nats().server_info().version;
    let err = reports
        .set("acme", "@every 1s", &TenantReport::new("acme".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RecurringError::Refused { server_version, .. } if *server_version == version),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "nats-server {version} refuses the schedule `@every 1s` of task `tenant_report`; cron and \
             `@every` schedules need nats-server 2.14 or newer, and a date that never occurs is refused by all"
        )
    );
    assert!(reports.list().await.unwrap().is_empty());
}
