//! Events: every service gets every event, the instances of one service
//! share them, and a subscription runs through the task attempt pipeline
//! (retries, dead letters, replays to that subscription only).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use natask_runtime::{event, subscribe, Client, Runtime, State, TaskContext, TaskError, TaskId};
use natask_testing::NatsServer;
use tokio::sync::{mpsc, Barrier};

use crate::{connect, header, publish_raw, recv_n, within, Running, EVENT_DEADLINE};

/// What a handler saw: the instance, the event's `n` and the attempt.
type Seen = (&'static str, u64, u32);

/// Where an instance's handlers report.
pub(crate) struct Sink {
    instance: &'static str,
    tx: mpsc::UnboundedSender<Seen>,
}

impl Sink {
    fn send(&self, n: u64, ctx: &TaskContext) {
        let _ = self.tx.send((self.instance, n, ctx.attempt()));
    }
}

/// A runtime serving only `service`, with `state`, on its own client.
async fn instance<T: Send + Sync + 'static>(
    server: &NatsServer,
    service: &str,
    state: T,
) -> Running {
    let client = Client::connect(&server.url()).await.unwrap();
    Running::start(
        Runtime::builder(client)
            .services([service])
            .concurrency(1)
            .state(state),
    )
    .await
}

/// Asserts that subscription `consumer` of `event` was delivered exactly
/// one message and has none pending (it never saw the others its stream
/// holds); the stream's info.
async fn delivered_once(
    client: &Client,
    event: &str,
    consumer: &str,
) -> async_nats::jetstream::stream::Info {
    let mut stream = client
        .jetstream()
        .get_stream(client.names().event_stream(event))
        .await
        .unwrap();
    let mut subscription = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
        .await
        .unwrap();
    let info = subscription.info().await.unwrap();
    assert_eq!(
        (info.delivered.consumer_sequence, info.num_pending),
        (1, 0),
        "subscription `{consumer}` saw only the one event meant for it"
    );
    stream.info().await.unwrap().clone()
}

// --- two services × two instances -------------------------------------

#[event]
pub(crate) struct ItFanout {
    n: u64,
}

/// An instance of a fan-out service: its first event waits until the
/// other instance of the service holds one too.
pub(crate) struct Fan {
    sink: Sink,
    barrier: Arc<Barrier>,
    waited: AtomicBool,
    /// Set if the other instance never came.
    alone: Arc<AtomicBool>,
}

impl Fan {
    async fn handle(&self, ev: ItFanout, ctx: &TaskContext) {
        if !self.waited.swap(true, Ordering::SeqCst)
            && tokio::time::timeout(EVENT_DEADLINE, self.barrier.wait())
                .await
                .is_err()
        {
            self.alone.store(true, Ordering::SeqCst);
        }
        self.sink.send(ev.n, ctx);
    }
}

#[subscribe(service = "it_fan_a")]
async fn fan_a(ev: ItFanout, fan: State<Fan>, ctx: &TaskContext) {
    fan.handle(ev, ctx).await;
}

#[subscribe(service = "it_fan_b")]
async fn fan_b(ev: ItFanout, fan: State<Fan>, ctx: &TaskContext) {
    fan.handle(ev, ctx).await;
}

#[tokio::test]
async fn every_service_handles_every_event_once_shared_by_its_instances() {
    const N: u64 = 20;
    let server = NatsServer::start();
    let client = connect(&server).await;
    let alone = Arc::new(AtomicBool::new(false));
    let mut running = Vec::new();
    let mut receivers = Vec::new();
    for service in ["it_fan_a", "it_fan_b"] {
        let (tx, rx) = mpsc::unbounded_channel();
        receivers.push(rx);
        let barrier = Arc::new(Barrier::new(2));
        for label in ["one", "two"] {
            let fan = Fan {
                sink: Sink {
                    instance: label,
                    tx: tx.clone(),
                },
                barrier: Arc::clone(&barrier),
                waited: AtomicBool::new(false),
                alone: Arc::clone(&alone),
            };
            running.push(instance(&server, service, fan).await);
        }
    }
    for n in 0..N {
        ItFanout { n }.publish(&client).await.unwrap();
    }
    let mut per_service = Vec::new();
    for rx in &mut receivers {
        per_service.push(recv_n(rx, N as usize).await);
    }
    for r in running {
        r.stop().await;
    }
    assert!(
        !alone.load(Ordering::SeqCst),
        "an instance held an event while the other instance of its service never did"
    );
    for (seen, rx) in per_service.iter().zip(&mut receivers) {
        let mut ns: Vec<u64> = seen.iter().map(|s| s.1).collect();
        ns.sort_unstable();
        assert_eq!(ns, (0..N).collect::<Vec<_>>(), "each event once");
        assert!(rx.try_recv().is_err(), "no event was handled twice");
        for instance in ["one", "two"] {
            assert!(
                seen.iter().any(|s| s.0 == instance),
                "instance {instance} took part: {seen:?}"
            );
        }
    }
}

// --- retries, dead letter and replay ------------------------------------

#[event]
pub(crate) struct ItFlaky {
    n: u64,
}

/// Whether the `it_dl_bad` handler fails.
pub(crate) struct Failing(AtomicBool);

#[subscribe(service = "it_dl_ok")]
async fn steady(ev: ItFlaky, sink: State<Sink>, ctx: &TaskContext) {
    sink.send(ev.n, ctx);
}

#[subscribe(service = "it_dl_bad", retries = 1, backoff = "fixed(100ms)")]
async fn flaky(
    ev: ItFlaky,
    sink: State<Sink>,
    failing: State<Failing>,
    ctx: &TaskContext,
) -> Result<(), TaskError> {
    sink.send(ev.n, ctx);
    if failing.0.load(Ordering::SeqCst) {
        return Err(TaskError::retry("the ledger is down"));
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_service_dead_letters_alone_and_its_replay_reaches_only_it() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let (ok_tx, mut ok_rx) = mpsc::unbounded_channel();
    let (bad_tx, mut bad_rx) = mpsc::unbounded_channel();
    let ok = instance(
        &server,
        "it_dl_ok",
        Sink {
            instance: "ok",
            tx: ok_tx,
        },
    )
    .await;
    let failing = Arc::new(Failing(AtomicBool::new(true)));
    let bad = Running::start(
        Runtime::builder(client.clone())
            .services(["it_dl_bad"])
            .state(Sink {
                instance: "bad",
                tx: bad_tx,
            })
            .state_arc(Arc::clone(&failing)),
    )
    .await;
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();

    let published = ItFlaky { n: 7 }.publish(&client).await.unwrap();
    assert_eq!(recv_n(&mut ok_rx, 1).await, [("ok", 7, 1)]);
    assert_eq!(recv_n(&mut bad_rx, 2).await, [("bad", 7, 1), ("bad", 7, 2)]);
    let letter = within(dead.next()).await.unwrap();
    assert_eq!(
        letter.subject.as_str(),
        format!("natask.dlq.it_dl_bad__flaky.it_flaky.{}", published.id)
    );
    assert_eq!(header(&letter, "Natask-Queue"), "it_dl_bad__flaky");
    assert_eq!(header(&letter, "Natask-Event"), "it_flaky");
    assert_eq!(header(&letter, "Natask-Reason"), "exhausted");
    assert_eq!(header(&letter, "Natask-Attempts"), "2");
    assert_eq!(header(&letter, "Natask-Error"), "the ledger is down");
    let stored = client.dead_letters().get(published.id).await.unwrap();
    assert_eq!(stored.queue, "it_dl_bad__flaky");
    assert_eq!(stored.task.as_deref(), Some("it_flaky"));
    assert_eq!(&stored.payload[..], br#"{"n":7}"#);

    failing.0.store(false, Ordering::SeqCst);
    client.dead_letters().replay(published.id).await.unwrap();
    assert_eq!(
        recv_n(&mut bad_rx, 1).await,
        [("bad", 7, 1)],
        "the replay runs again with its attempts reset"
    );
    let stream = delivered_once(&client, "it_flaky", "it_dl_ok__steady").await;
    assert_eq!(stream.state.messages, 2, "the event and its replay");
    ok.stop().await;
    bad.stop().await;
    assert!(ok_rx.try_recv().is_err(), "the healthy service ran once");
    assert!(client.dead_letters().get(published.id).await.is_err());
}

// --- start = "all" vs "new", retention ------------------------------------

#[event]
pub(crate) struct ItHistory {
    n: u64,
}

#[subscribe(service = "it_hist_all", start = "all")]
async fn replayer(ev: ItHistory, sink: State<Sink>, ctx: &TaskContext) {
    sink.send(ev.n, ctx);
}

#[subscribe(service = "it_hist_new", start = "new")]
async fn newcomer(ev: ItHistory, sink: State<Sink>, ctx: &TaskContext) {
    sink.send(ev.n, ctx);
}

#[tokio::test]
async fn a_new_service_starts_from_the_beginning_or_from_now() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    for n in 0..3 {
        ItHistory { n }.publish(&client).await.unwrap();
    }
    let (all_tx, mut all_rx) = mpsc::unbounded_channel();
    let (new_tx, mut new_rx) = mpsc::unbounded_channel();
    let sink = |instance, tx| Sink { instance, tx };
    let all = instance(&server, "it_hist_all", sink("all", all_tx)).await;
    let new = instance(&server, "it_hist_new", sink("new", new_tx)).await;
    ItHistory { n: 100 }.publish(&client).await.unwrap();

    let ns = |seen: Vec<Seen>| seen.into_iter().map(|s| s.1).collect::<Vec<_>>();
    assert_eq!(ns(recv_n(&mut all_rx, 4).await), [0, 1, 2, 100]);
    assert_eq!(ns(recv_n(&mut new_rx, 1).await), [100]);
    let stream = delivered_once(&client, "it_history", "it_hist_new__newcomer").await;
    // the default retention
    let config = stream.config;
    assert_eq!(config.max_age, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(
        config.retention,
        async_nats::jetstream::stream::RetentionPolicy::Limits
    );
    all.stop().await;
    new.stop().await;
}

#[event(retention = "90m", name = "it-retained")]
pub(crate) struct ItRetained {}

#[tokio::test]
async fn the_stream_keeps_events_as_long_as_the_event_says() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let published = ItRetained {}.publish(&client).await.unwrap();
    assert_eq!(published.sequence, 1);
    let stream = client
        .jetstream()
        .get_stream("NATASK_EV_it-retained")
        .await
        .unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.config.max_age, Duration::from_secs(90 * 60));
    assert_eq!(
        info.config.subjects,
        ["natask.ev.it-retained", "natask.ev.it-retained.*"]
    );
    assert_eq!(info.state.messages, 1, "stored with no subscriber");
}

#[tokio::test]
async fn a_publish_nats_does_not_answer_times_out_and_its_retry_stores_it_once() {
    let mut server = NatsServer::start();
    let client = connect(&server)
        .await
        .with_timeout(Duration::from_millis(500));
    let first = ItRetained {}.publish(&client).await.unwrap();
    server.kill();
    let id = TaskId::new();
    let err = client
        .publish_with_id(&ItRetained {}, id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, natask_runtime::PublishError::Timeout { .. }),
        "{err:?}"
    );
    let said = err.to_string();
    assert!(
        said.contains(&format!("(id {id}) was not confirmed within 500ms"))
            && said.contains(&format!("Client::publish_with_id(.., {id})")),
        "{said}"
    );
    server.restart();
    // Sent again with the same id, twice: stored once (the first may have
    // been stored before the kill, or not).
    let client = connect(&server).await;
    let again = client.publish_with_id(&ItRetained {}, id).await.unwrap();
    let twice = client.publish_with_id(&ItRetained {}, id).await.unwrap();
    assert_eq!((again.id, twice.id), (id, id));
    assert_eq!(again.sequence, twice.sequence, "the second is a duplicate");
    let stream = client
        .jetstream()
        .get_stream("NATASK_EV_it-retained")
        .await
        .unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.state.messages, 2, "{first:?} and {id} once");
}

// --- malformed payloads -----------------------------------------------------

#[event]
pub(crate) struct ItShape {
    n: u64,
}

#[subscribe(service = "it_shape")]
async fn shaped(ev: ItShape, sink: State<Sink>, ctx: &TaskContext) {
    sink.send(ev.n, ctx);
}

#[tokio::test]
async fn a_malformed_event_is_dead_lettered_and_the_events_around_it_are_handled() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = instance(&server, "it_shape", Sink { instance: "x", tx }).await;
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    ItShape { n: 1 }.publish(&client).await.unwrap();
    let bad = TaskId::new().to_string();
    publish_raw(
        &client,
        "natask.ev.it_shape",
        &[("Natask-Event", "it_shape"), ("Natask-Id", &bad)],
        &b"{\"n\":\"seven\"}"[..],
    )
    .await;
    publish_raw(&client, "natask.ev.it_shape", &[], &b"{\"n\":3}"[..]).await;
    ItShape { n: 2 }.publish(&client).await.unwrap();
    let ns: Vec<u64> = recv_n(&mut rx, 2).await.into_iter().map(|s| s.1).collect();
    assert_eq!(ns, [1, 2]);
    let mut letters = [
        within(dead.next()).await.unwrap(),
        within(dead.next()).await.unwrap(),
    ];
    running.stop().await;
    letters.sort_by_key(|l| header(l, "Natask-Reason"));
    let [letter, headerless] = &letters;
    assert_eq!(header(headerless, "Natask-Reason"), "not_a_task");
    assert_eq!(
        header(headerless, "Natask-Error"),
        "the message has no `Natask-Event` header, so no handler can be chosen; \
         publish events with natask's headers (docs/events.md)"
    );
    assert_eq!(header(letter, "Natask-Id"), bad);
    assert_eq!(header(letter, "Natask-Reason"), "decode");
    assert_eq!(header(letter, "Natask-Queue"), "it_shape__shaped");
    let error = header(letter, "Natask-Error");
    assert!(error.starts_with("payload does not decode: "), "{error}");
    assert!(error.contains("invalid type"), "{error}");
}

#[tokio::test]
async fn an_unknown_service_is_refused_at_build() {
    let text = refused("it_nobody").await;
    assert!(
        text.starts_with("service `it_nobody` was asked for, but no linked `#[subscribe]` handler belongs to it (linked services: "),
        "{text}"
    );
    assert!(text.contains("`it_fan_a`"), "{text}");
}

/// Why a runtime serving only `service` does not build.
async fn refused(service: &str) -> String {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let built = Runtime::builder(client).services([service]).build().await;
    built.unwrap_err().to_string()
}

// --- what a handler sees, and what is counted ----------------------------

#[event]
pub(crate) struct ItContext {}

/// What a handler's context said: its id, task name and queue.
pub(crate) struct Contexts(mpsc::UnboundedSender<(TaskId, String, String)>);

#[subscribe(service = "it_ctx", name = "look")]
async fn look_at_the_context(_ev: ItContext, seen: State<Contexts>, ctx: &TaskContext) {
    let _ = seen
        .0
        .send((ctx.id(), ctx.task_name().to_owned(), ctx.queue().to_owned()));
}

#[tokio::test]
async fn a_handler_sees_the_event_id_and_name_and_its_subscription() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let builder = Runtime::builder(client.clone()).services(["it_ctx"]);
    #[cfg(feature = "metrics")]
    let builder = builder.http("127.0.0.1:0".parse().unwrap());
    let runtime = builder.state(Contexts(tx)).build().await.unwrap();
    assert_eq!(
        runtime.queues().into_iter().collect::<Vec<_>>(),
        [("it_ctx__look", vec!["it_context"])],
        "a runtime given only services serves no task queue"
    );
    #[cfg(feature = "metrics")]
    let addr = runtime.http_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(runtime.run_until(async {
        let _ = stopped.await;
    }));
    let published = ItContext {}.publish(&client).await.unwrap();
    let (id, task, queue) = within(rx.recv()).await.unwrap();
    assert_eq!(id, published.id);
    assert_eq!(task, "it_context");
    assert_eq!(queue, "it_ctx__look");
    // The worker registry lists the subscription; the catalog of tasks
    // (written before the registry entry) does not.
    let me = crate::eventually("the registry showing the runtime", || async {
        let workers = client.workers().await.map_err(|e| e.to_string())?;
        match workers.as_slice() {
            [w] => Ok(w.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let served: Vec<_> = me
        .queues
        .iter()
        .map(|q| (q.queue.as_str(), q.tasks.clone()))
        .collect();
    assert_eq!(served, [("it_ctx__look", vec!["it_context".to_owned()])]);
    assert!(
        client.catalog().await.unwrap().is_empty(),
        "an event is not a task"
    );
    #[cfg(feature = "metrics")]
    {
        let labels = r#"queue="it_ctx__look",task="it_context""#;
        let line = format!("natask_tasks_succeeded_total{{{labels}}} 1");
        crate::eventually("the event being counted", || async {
            let (_, body) = crate::observe::http_get(addr, "/metrics").await;
            if body.lines().any(|l| l == line) {
                Ok(())
            } else {
                Err(body)
            }
        })
        .await;
    }
    let _ = stop.send(());
    within(done).await.unwrap().unwrap();
}

// --- attempts are counted per subscription --------------------------------

#[event]
pub(crate) struct ItSnooze {}

/// A sink whose handler fails its first delivery only.
pub(crate) struct FailOnce {
    sink: Sink,
    failed: AtomicBool,
}

impl FailOnce {
    /// Reports the delivery; whether it is the first.
    fn first(&self, ctx: &TaskContext) -> bool {
        self.sink.send(0, ctx);
        !self.failed.swap(true, Ordering::SeqCst)
    }
}

#[subscribe(service = "it_snoozer")]
async fn snoozer(_ev: ItSnooze, once: State<FailOnce>, ctx: &TaskContext) -> Result<(), TaskError> {
    if once.first(ctx) {
        // long enough to be still recorded when the other service retries
        return Err(TaskError::snooze(Duration::from_secs(1)));
    }
    Ok(())
}

#[subscribe(service = "it_retrier", backoff = "fixed(100ms)")]
async fn retrier(_ev: ItSnooze, once: State<FailOnce>, ctx: &TaskContext) -> Result<(), TaskError> {
    if once.first(ctx) {
        return Err(TaskError::retry("once"));
    }
    Ok(())
}

#[tokio::test]
async fn one_service_snoozing_an_event_does_not_change_another_services_attempts() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let (snooze_tx, mut snooze_rx) = mpsc::unbounded_channel();
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel();
    let once = |instance, tx| FailOnce {
        sink: Sink { instance, tx },
        failed: AtomicBool::new(false),
    };
    let snoozer = instance(&server, "it_snoozer", once("snoozer", snooze_tx)).await;
    let retrier = instance(&server, "it_retrier", once("retrier", retry_tx)).await;
    ItSnooze {}.publish(&client).await.unwrap();
    let attempts = |seen: Vec<Seen>| seen.into_iter().map(|s| s.2).collect::<Vec<_>>();
    assert_eq!(
        attempts(recv_n(&mut retry_rx, 2).await),
        [1, 2],
        "the retry is the retrier's second attempt, whatever the snoozer recorded"
    );
    assert_eq!(
        attempts(recv_n(&mut snooze_rx, 2).await),
        [1, 1],
        "a snooze spends no attempt"
    );
    snoozer.stop().await;
    retrier.stop().await;
}

// --- two services dead-lettering one event --------------------------------

#[event]
pub(crate) struct ItDoubleFault {}

/// A handler's sink, and whether it refuses its events.
pub(crate) struct Refusing {
    sink: Sink,
    refuse: AtomicBool,
}

impl Refusing {
    fn handle(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        self.sink.send(0, ctx);
        if self.refuse.load(Ordering::SeqCst) {
            return Err(TaskError::fatal("refused"));
        }
        Ok(())
    }
}

#[subscribe(service = "it_fault_a")]
async fn fault_a(
    _ev: ItDoubleFault,
    r: State<Refusing>,
    ctx: &TaskContext,
) -> Result<(), TaskError> {
    r.handle(ctx)
}

#[subscribe(service = "it_fault_b")]
async fn fault_b(
    _ev: ItDoubleFault,
    r: State<Refusing>,
    ctx: &TaskContext,
) -> Result<(), TaskError> {
    r.handle(ctx)
}

#[tokio::test]
async fn each_service_parks_its_own_letter_of_one_event_and_replays_it_alone() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let mut running = Vec::new();
    let mut handlers = Vec::new();
    for service in ["it_fault_a", "it_fault_b"] {
        let (tx, rx) = mpsc::unbounded_channel();
        let refusing = Arc::new(Refusing {
            sink: Sink {
                instance: service,
                tx,
            },
            refuse: AtomicBool::new(true),
        });
        let builder = Runtime::builder(client.clone())
            .services([service])
            .state_arc(Arc::clone(&refusing));
        running.push(Running::start(builder).await);
        handlers.push((refusing, rx));
    }
    let published = ItDoubleFault {}.publish(&client).await.unwrap();
    let mut queues: Vec<String> = Vec::new();
    for _ in 0..2 {
        let letter = within(dead.next()).await.unwrap();
        assert_eq!(header(&letter, "Natask-Reason"), "fatal");
        queues.push(header(&letter, "Natask-Queue"));
    }
    queues.sort();
    assert_eq!(
        queues,
        ["it_fault_a__fault_a", "it_fault_b__fault_b"],
        "one letter per service, neither taken for a duplicate of the other"
    );
    let letters = client.dead_letters();
    for queue in &queues {
        let letter = letters.get_in(queue, published.id).await.unwrap();
        assert_eq!((&letter.queue, letter.id), (queue, published.id));
    }

    let (a, a_rx) = &mut handlers[0];
    a.refuse.store(false, Ordering::SeqCst);
    // as `natask dlq replay --all --queue it_fault_a__fault_a` does
    let listed = letters.list("it_fault_a__fault_a", 0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    letters.replay_listed(&listed[0]).await.unwrap();
    assert_eq!(
        recv_n(a_rx, 2).await,
        [("it_fault_a", 0, 1), ("it_fault_a", 0, 1)],
        "refused, then replayed with its attempts reset"
    );
    delivered_once(&client, "it_double_fault", "it_fault_b__fault_b").await;
    assert!(letters
        .get_in("it_fault_a__fault_a", published.id)
        .await
        .is_err());
    let b = letters
        .get_in("it_fault_b__fault_b", published.id)
        .await
        .unwrap();
    assert_eq!(b.reason, "fatal", "the other service's letter stays");
    for r in running {
        r.stop().await;
    }
}

// --- a queue policy under the subscription's name --------------------------

#[event]
pub(crate) struct ItPolicy {}

#[subscribe(service = "it_pol", name = "h")]
async fn policed(_ev: ItPolicy, sink: State<Sink>, ctx: &TaskContext) -> Result<(), TaskError> {
    sink.send(0, ctx);
    Err(TaskError::retry("always"))
}

#[tokio::test]
async fn a_queue_policy_named_after_the_subscription_applies_to_it() {
    let server = NatsServer::start();
    let client = connect(&server)
        .await
        .with_queue(
            natask_runtime::QueuePolicy::new("it_pol__h")
                .retries(0)
                .max_in_flight(7),
        )
        .unwrap();
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(
        Runtime::builder(client.clone())
            .services(["it_pol"])
            .state(Sink { instance: "p", tx }),
    )
    .await;
    ItPolicy {}.publish(&client).await.unwrap();
    let letter = within(dead.next()).await.unwrap();
    assert_eq!(recv_n(&mut rx, 1).await, [("p", 0, 1)]);
    assert_eq!(header(&letter, "Natask-Reason"), "exhausted");
    assert_eq!(header(&letter, "Natask-Attempts"), "1", "retries(0)");
    let mut consumer = client
        .jetstream()
        .get_stream(client.names().event_stream("it_policy"))
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("it_pol__h")
        .await
        .unwrap();
    assert_eq!(consumer.info().await.unwrap().config.max_ack_pending, 7);
    running.stop().await;
    assert!(rx.try_recv().is_err(), "no second attempt");
}

// --- two handlers that would share one consumer ----------------------------

#[event]
pub(crate) struct ItDup {}

mod dup_one {
    #[natask_runtime::subscribe(service = "it_dup", name = "same")]
    async fn first(_ev: super::ItDup) {}
}

mod dup_two {
    #[natask_runtime::subscribe(service = "it_dup", name = "same")]
    async fn second(_ev: super::ItDup) {}
}

#[tokio::test]
async fn two_handlers_sharing_a_consumer_are_refused_naming_both() {
    let text = refused("it_dup").await;
    assert!(
        text.starts_with("subscription `it_dup__same` to event `it_dup` is defined twice: by `"),
        "{text}"
    );
    assert!(text.contains("events::dup_one"), "{text}");
    assert!(text.contains("events::dup_two"), "{text}");
    assert!(
        text.ends_with("give one of them another name with `#[subscribe(name = \"...\")]`"),
        "{text}"
    );
}
