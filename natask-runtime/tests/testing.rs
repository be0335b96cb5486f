//! The test modes (feature `testing`), without a NATS server: `perform`,
//! the recording client and its assertions, and `drain`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use natask_runtime::testing::{self, DeadReason, Next};
use natask_runtime::{
    task, Backoff, Client, EnqueueError, EnqueueOptions, State, TaskContext, TaskError,
    TaskErrorKind, TaskId,
};

struct Greeting(&'static str);

#[task(queue = "greetings")]
async fn greet(
    greeting: State<Greeting>,
    ctx: &TaskContext,
    name: String,
) -> Result<String, TaskError> {
    Ok(format!(
        "{}, {name} (attempt {} of {}, id {})",
        greeting.0,
        ctx.attempt(),
        ctx.max_attempts(),
        ctx.id()
    ))
}

/// How the `flaky` task fails on its attempt.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Failure {
    Retry,
    Fatal,
    Snooze,
    Panic,
    Hang,
}

#[task(queue = "flaky", retries = 2, backoff = "fixed(7s)")]
async fn flaky(how: Failure) -> Result<(), TaskError> {
    match how {
        Failure::Retry => Err(TaskError::retry("the mail server is busy")),
        Failure::Fatal => Err(TaskError::fatal("no such mailbox")),
        Failure::Snooze => Err(TaskError::snooze(Duration::from_secs(42))),
        Failure::Panic => panic!("unexpected mailbox"),
        Failure::Hang => std::future::pending().await,
    }
}

#[task(queue = "emails")]
async fn send_email(to: String) {
    let _ = to;
}

#[task(queue = "emails")]
async fn digest(user: u64) {
    let _ = user;
}

#[tokio::test]
async fn perform_injects_state_and_context() {
    let id = TaskId::new();
    let performed = testing::perform(Greet::new("Ada".into()))
        .state(Greeting("Hello"))
        .id(id)
        .attempt(2)
        .max_attempts(5)
        .await;
    assert_eq!(
        performed.output::<String>(),
        format!("Hello, Ada (attempt 2 of 5, id {id})")
    );
    assert_eq!(performed.next, Next::Done);
    assert_eq!((performed.task, performed.queue), ("greet", "greetings"));
}

#[tokio::test]
async fn perform_takes_the_tasks_attempts_by_default() {
    let performed = testing::perform(Greet::new("Bo".into()))
        .state(Greeting("Hi"))
        .await;
    // No `retries`: the runtime's default, 3, plus the first attempt.
    assert_eq!(performed.max_attempts, natask_runtime::DEFAULT_RETRIES + 1);
    assert!(performed.output::<String>().contains("attempt 1 of 4"));
}

#[tokio::test]
#[should_panic(
    expected = "task `greet` needs `State<testing::Greeting>`, but no value of that type was given; add `.state(value)` with a `testing::Greeting`"
)]
async fn perform_names_missing_state() {
    let _ = testing::perform(Greet::new("Ada".into())).await;
}

#[tokio::test]
async fn perform_says_a_failed_attempt_is_retried_after_the_backoff() {
    let performed = testing::perform(Flaky::new(Failure::Retry)).await;
    let error = performed.error().expect("it failed");
    assert_eq!(error.kind(), TaskErrorKind::Retry);
    assert_eq!(error.to_string(), "the mail server is busy");
    assert_eq!(
        performed.next,
        Next::Retry {
            after: Duration::from_secs(7)
        }
    );
    assert_eq!(performed.max_attempts, 3);
}

#[tokio::test]
async fn perform_says_the_last_failed_attempt_is_dead() {
    let performed = testing::perform(Flaky::new(Failure::Retry))
        .attempt(3)
        .await;
    assert_eq!(
        performed.next,
        Next::Dead {
            reason: DeadReason::Exhausted,
            error: "the mail server is busy".into()
        }
    );
}

#[tokio::test]
async fn perform_uses_the_default_backoff_seeded_by_the_id() {
    let id = TaskId::new();
    let performed = testing::perform(Greet::new("x".into()))
        .state(Greeting("Hi"))
        .id(id)
        .await;
    assert!(performed.is_ok());
    // A task without `backoff` retries after the default backoff; an
    // exponential one from 1 s with ±20 % jitter.
    let performed = testing::perform(SendEmailFails::new())
        .id(id)
        .default_backoff(Backoff::exponential(
            Duration::from_secs(1),
            2.0,
            Duration::from_secs(60),
        ))
        .attempt(2)
        .await;
    let Next::Retry { after } = performed.next else {
        panic!("expected a retry, got {:?}", performed.next)
    };
    assert!(
        after >= Duration::from_millis(1600) && after <= Duration::from_millis(2400),
        "{after:?}"
    );
    let again = testing::perform(SendEmailFails::new())
        .id(id)
        .default_backoff(Backoff::exponential(
            Duration::from_secs(1),
            2.0,
            Duration::from_secs(60),
        ))
        .attempt(2)
        .await;
    assert_eq!(again.next, performed.next, "one id, one delay");
}

#[task(queue = "flaky")]
async fn send_email_fails() -> Result<(), TaskError> {
    Err(TaskError::retry("down"))
}

#[tokio::test]
async fn perform_reports_fatal_snooze_panic_and_timeout() {
    let fatal = testing::perform(Flaky::new(Failure::Fatal)).await;
    assert_eq!(
        fatal.next,
        Next::Dead {
            reason: DeadReason::Fatal,
            error: "no such mailbox".into()
        }
    );

    let snoozed = testing::perform(Flaky::new(Failure::Snooze)).await;
    assert_eq!(
        snoozed.next,
        Next::Snooze {
            after: Duration::from_secs(42)
        }
    );

    let panicked = testing::perform(Flaky::new(Failure::Panic)).await;
    let error = panicked.error().expect("a panic is a failure");
    assert_eq!(error.kind(), TaskErrorKind::Panic);
    assert!(error.to_string().contains("unexpected mailbox"), "{error}");
    assert_eq!(
        panicked.next,
        Next::Retry {
            after: Duration::from_secs(7)
        }
    );

    let hung = testing::perform(Flaky::new(Failure::Hang))
        .timeout(Duration::from_millis(20))
        .attempt(3)
        .await;
    assert_eq!(
        hung.error().map(TaskError::kind),
        Some(TaskErrorKind::Timeout)
    );
    assert!(
        matches!(
            hung.next,
            Next::Dead {
                reason: DeadReason::Exhausted,
                ..
            }
        ),
        "{:?}",
        hung.next
    );
}

#[tokio::test]
async fn a_recording_client_records_every_way_of_enqueueing() {
    let client = Client::recording();
    SendEmail::new("a@example.com".into())
        .enqueue(&client)
        .await
        .unwrap();
    client
        .enqueue_in(
            &SendEmail::new("later@example.com".into()),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let at = SystemTime::now() + Duration::from_secs(3600);
    client
        .enqueue_at(&SendEmail::new("at@example.com".into()), at)
        .await
        .unwrap();
    let id = TaskId::new();
    let first = client
        .enqueue_with(&Digest::new(1), EnqueueOptions::new().id(id))
        .await
        .unwrap();
    let again = client
        .enqueue_with(&Digest::new(1), EnqueueOptions::new().id(id))
        .await
        .unwrap();
    assert!(first.created && !again.created && again.id == id);
    let many = client.enqueue_many([Digest::new(2), Digest::new(3)]).await;
    assert!(many.iter().all(Result::is_ok));

    let to: Vec<String> = testing::enqueued::<SendEmail>(&client)
        .into_iter()
        .map(|t| t.to)
        .collect();
    assert_eq!(to, ["a@example.com", "later@example.com", "at@example.com"]);
    let users: Vec<u64> = testing::enqueued::<Digest>(&client)
        .into_iter()
        .map(|t| t.user)
        .collect();
    assert_eq!(users, [1, 2, 3]);

    let recorded = testing::recorded(&client);
    assert_eq!(recorded.len(), 6);
    assert_eq!(recorded[0].due, None);
    let later = recorded[1].due.expect("enqueue_in records a due time");
    assert!(later > recorded[1].enqueued_at + Duration::from_secs(59));
    assert_eq!(recorded[2].due, Some(at));
    assert_eq!(recorded[3].id, id);
    assert_eq!(recorded[3].payload, serde_json::json!({"user": 1}));
    assert_eq!(
        recorded[3].headers.get("Natask-Task").map(|v| v.as_str()),
        Some("digest")
    );

    testing::assert_enqueued::<SendEmail>(&client, |t| t.to == "a@example.com");
    testing::refute_enqueued::<SendEmail>(&client, |t| t.to == "b@example.com");
    testing::clear(&client);
    assert!(testing::recorded(&client).is_empty());
}

#[tokio::test]
async fn a_recording_client_never_connects() {
    let client = Client::recording();
    SendEmail::new("a@example.com".into())
        .enqueue(&client)
        .await
        .unwrap();
    client.enqueue_many([Digest::new(1)]).await;
    let stats = client.nats().statistics();
    assert_eq!(stats.connects.load(Ordering::Relaxed), 0);
    assert_eq!(stats.out_messages.load(Ordering::Relaxed), 0);
    assert!(!client.is_ready());
    assert_eq!(testing::recorded(&client).len(), 2);
}

#[tokio::test]
async fn server_requests_on_a_recording_client_fail_at_once() {
    let client = Client::recording();
    // The bound only keeps a regression from hanging the test.
    let answer = tokio::time::timeout(Duration::from_secs(10), client.task_info(TaskId::new()))
        .await
        .expect("task_info answered");
    let error = answer.expect_err("no server answers");
    assert_eq!(
        error.to_string(),
        "stream `KV_NATASK_TASKS` could not be opened, read or written"
    );
}

#[tokio::test]
async fn clients_made_from_a_recording_client_record_in_the_same_place() {
    let client = Client::recording();
    let other = client.clone().with_timeout(Duration::from_secs(1));
    SendEmail::new("a@example.com".into())
        .enqueue(&other)
        .await
        .unwrap();
    assert_eq!(testing::enqueued::<SendEmail>(&client).len(), 1);
}

#[tokio::test]
async fn middleware_runs_on_a_recording_client() {
    struct NoDigests;
    impl natask_runtime::middleware::Middleware for NoDigests {
        fn on_enqueue(
            &self,
            enqueue: &mut natask_runtime::middleware::Enqueue<'_>,
        ) -> Result<(), natask_runtime::middleware::Rejected> {
            if enqueue.task() == "digest" {
                return Err(natask_runtime::middleware::Rejected(
                    "no digests today".into(),
                ));
            }
            Ok(())
        }
    }
    let client = Client::recording().with_middleware(NoDigests);
    let error = client.enqueue(&Digest::new(1)).await.unwrap_err();
    assert!(matches!(error, EnqueueError::Rejected { .. }), "{error}");
    assert!(testing::recorded(&client).is_empty());
}

/// The message of the panic `f` raises.
fn panic_message(f: impl FnOnce()) -> String {
    let panic = std::panic::catch_unwind(AssertUnwindSafe(f)).expect_err("it panics");
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => (*panic.downcast::<&str>().expect("a text panic")).to_owned(),
    }
}

#[tokio::test]
async fn failed_assertions_list_what_was_enqueued() {
    let client = Client::recording();
    let message = panic_message(|| {
        testing::assert_enqueued::<SendEmail>(&client, |_| true);
    });
    assert_eq!(
        message,
        "expected a `send_email` task (queue `emails`) matching the predicate to be enqueued, \
         but none was; nothing was enqueued"
    );

    SendEmail::new("a@example.com".into())
        .enqueue(&client)
        .await
        .unwrap();
    let due = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    client.enqueue_at(&Digest::new(7), due).await.unwrap();
    let message = panic_message(|| {
        testing::assert_enqueued::<SendEmail>(&client, |t| t.to == "b@example.com");
    });
    assert_eq!(
        message,
        "expected a `send_email` task (queue `emails`) matching the predicate to be enqueued, \
         but none was; enqueued were (2):\n  \
         - `send_email` on queue `emails`: {\"to\":\"a@example.com\"} (due now)\n  \
         - `digest` on queue `emails`: {\"user\":7} (due 2096-10-02T07:06:40.000Z)"
    );
    let message = panic_message(|| {
        testing::refute_enqueued::<SendEmail>(&client, |t| t.to.ends_with("@example.com"));
    });
    assert!(
        message.starts_with(
            "expected no `send_email` task (queue `emails`) matching the predicate to be \
             enqueued, but 1 was; enqueued were (2):\n  - `send_email`"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn assertions_need_a_recording_client() {
    // A client on a connection that never connects, but not recording.
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect("nats://127.0.0.1:1")
        .await
        .unwrap();
    let client = Client::from_nats(nats);
    let message = panic_message(|| {
        testing::enqueued::<SendEmail>(&client);
    });
    assert_eq!(
        message,
        "this client publishes to NATS; make it with `Client::recording()` to record enqueues"
    );
}

/// Counts the attempts of `eventually`, which succeeds on its third.
#[derive(Default)]
struct Attempts(AtomicU32);

#[task(queue = "flaky", retries = 5)]
async fn eventually(attempts: State<Attempts>, ctx: &TaskContext) -> Result<u32, TaskError> {
    attempts.0.fetch_add(1, Ordering::SeqCst);
    if ctx.attempt() < 3 {
        return Err(TaskError::retry(format!(
            "attempt {} failed",
            ctx.attempt()
        )));
    }
    Ok(ctx.attempt())
}

#[task(queue = "orders")]
async fn place_order(client: State<Client>, order: u64) -> Result<(), TaskError> {
    ShipOrder::new(order)
        .enqueue(&client)
        .await
        .map_err(TaskError::fatal)?;
    Ok(())
}

#[task(queue = "orders")]
async fn ship_order(order: u64) -> Result<u64, TaskError> {
    Ok(order * 10)
}

#[tokio::test]
async fn drain_retries_at_once_until_success_or_death() {
    let client = Client::recording();
    let attempts = Arc::new(Attempts::default());
    client.enqueue(&Eventually::new()).await.unwrap();
    client.enqueue(&Flaky::new(Failure::Retry)).await.unwrap();
    client.enqueue(&Flaky::new(Failure::Fatal)).await.unwrap();
    client
        .enqueue_in(
            &SendEmail::new("later@example.com".into()),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let drained = testing::drain(&client)
        .state_arc(Arc::clone(&attempts))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "backoffs are not waited out"
    );

    let names: Vec<&str> = drained.iter().map(|d| d.task).collect();
    assert_eq!(names, ["eventually", "flaky", "flaky", "send_email"]);

    assert!(drained[0].succeeded());
    assert_eq!(drained[0].attempts, 3);
    assert_eq!(drained[0].last.output::<u32>(), 3);
    assert_eq!(attempts.0.load(Ordering::SeqCst), 3);
    assert_eq!(drained[0].delays.len(), 2);

    assert_eq!(
        drained[1].dead(),
        Some((DeadReason::Exhausted, "the mail server is busy"))
    );
    assert_eq!(drained[1].attempts, 3);
    assert_eq!(drained[1].delays, [Duration::from_secs(7); 2]);

    assert_eq!(
        drained[2].dead(),
        Some((DeadReason::Fatal, "no such mailbox"))
    );
    assert_eq!(drained[2].attempts, 1);

    assert!(drained[3].succeeded(), "a delayed task runs in its turn");
    assert!(
        testing::recorded(&client).is_empty(),
        "what ran is taken out"
    );
}

#[tokio::test]
async fn drain_runs_tasks_enqueued_by_handlers() {
    let client = Client::recording();
    PlaceOrder::new(1).enqueue(&client).await.unwrap();
    PlaceOrder::new(2).enqueue(&client).await.unwrap();
    let drained = testing::drain(&client).state(client.clone()).await;
    let ran: Vec<(&str, bool)> = drained.iter().map(|d| (d.task, d.succeeded())).collect();
    assert_eq!(
        ran,
        [
            ("place_order", true),
            ("place_order", true),
            ("ship_order", true),
            ("ship_order", true)
        ]
    );
    assert_eq!(drained[2].last.output::<u64>(), 10);
    assert_eq!(drained[3].last.output::<u64>(), 20);
}

#[tokio::test]
async fn drain_gives_up_on_a_task_that_always_snoozes() {
    let client = Client::recording();
    client.enqueue(&Flaky::new(Failure::Snooze)).await.unwrap();
    let drained = testing::drain(&client).await;
    assert_eq!(drained.len(), 1);
    assert_eq!(drained[0].attempts, 1, "snoozes spend no attempt");
    assert_eq!(drained[0].delays.len(), 100);
    assert_eq!(
        drained[0].last.next,
        Next::Snooze {
            after: Duration::from_secs(42)
        }
    );
}

#[tokio::test]
async fn drain_gives_handlers_the_recording_client() {
    let client = Client::recording();
    PlaceOrder::new(3).enqueue(&client).await.unwrap();
    let drained = testing::drain(&client).await;
    let ran: Vec<&str> = drained.iter().map(|d| d.task).collect();
    assert_eq!(ran, ["place_order", "ship_order"]);
    assert_eq!(drained[1].last.output::<u64>(), 30);
}

#[tokio::test]
async fn an_inline_client_runs_each_task_as_it_is_enqueued() {
    let attempts = Arc::new(Attempts::default());
    let mut states = testing::StateMap::new();
    states.insert_arc(Arc::clone(&attempts));
    let client = Client::inline(states);

    let enqueued = client.enqueue(&Eventually::new()).await.unwrap();
    assert!(enqueued.created);
    // Ran before the enqueue returned: three attempts, the last succeeded.
    assert_eq!(attempts.0.load(Ordering::SeqCst), 3);
    let ran = testing::ran(&client);
    assert_eq!(ran.len(), 1);
    assert_eq!((ran[0].id, ran[0].attempts), (enqueued.id, 3));
    assert_eq!(ran[0].last.output::<u32>(), 3);
    assert!(
        testing::ran(&client).is_empty(),
        "ran hands each outcome out once"
    );

    // A failure is an outcome, not an enqueue error.
    client.enqueue(&Flaky::new(Failure::Fatal)).await.unwrap();
    let ran = testing::ran(&client);
    assert_eq!(ran[0].dead(), Some((DeadReason::Fatal, "no such mailbox")));
    assert!(
        testing::recorded(&client).is_empty(),
        "what ran is taken out"
    );
}

#[tokio::test]
async fn an_inline_client_runs_what_handlers_enqueue_after_them() {
    let client = Client::inline(testing::StateMap::new());
    PlaceOrder::new(4).enqueue(&client).await.unwrap();
    let ran: Vec<(&str, bool)> = testing::ran(&client)
        .iter()
        .map(|d| (d.task, d.succeeded()))
        .collect();
    assert_eq!(ran, [("place_order", true), ("ship_order", true)]);
    let stats = client.nats().statistics();
    assert_eq!(stats.connects.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn only_an_inline_client_runs_tasks() {
    let client = Client::recording();
    let message = panic_message(|| {
        testing::ran(&client);
    });
    assert_eq!(
        message,
        "this client does not run tasks; make it with `Client::inline(states)`"
    );
}

#[tokio::test]
async fn a_runtime_cannot_be_built_on_a_recording_client() {
    let client = Client::recording();
    // The bound only keeps a regression from hanging the test.
    let built = tokio::time::timeout(
        Duration::from_secs(30),
        natask_runtime::Runtime::builder(client)
            .state(Greeting("Hi"))
            .state_arc(Arc::new(Attempts::default()))
            .state(Client::recording())
            .build(),
    )
    .await
    .expect("build answered");
    let Err(error) = built else {
        panic!("a runtime was built without a server")
    };
    assert_eq!(
        error.to_string(),
        "could not provision what the runtime serves"
    );
}

#[task(queue = "reports", unique = "1h", unique_by = "tenant")]
async fn report(tenant: String, month: u32) {
    let _ = (tenant, month);
}

#[tokio::test]
async fn a_unique_task_is_recorded_once_while_it_waits() {
    let client = Client::recording();
    let first = Report::new("acme".into(), 1)
        .enqueue(&client)
        .await
        .unwrap();
    let again = Report::new("acme".into(), 2)
        .enqueue(&client)
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!((again.id, again.created), (first.id, false));
    let other = Report::new("beta".into(), 1)
        .enqueue(&client)
        .await
        .unwrap();
    assert!(other.created);
    let forced = client
        .enqueue_with(
            &Report::new("acme".into(), 3),
            EnqueueOptions::new().not_unique(),
        )
        .await
        .unwrap();
    assert!(forced.created);
    let by_key = natask_runtime::Unique::by("one digest", Duration::from_secs(60));
    let digest = client
        .enqueue_with(&Digest::new(1), EnqueueOptions::new().unique(by_key))
        .await
        .unwrap();
    let by_key = natask_runtime::Unique::by("one digest", Duration::from_secs(60));
    let twice = client
        .enqueue_with(&Digest::new(2), EnqueueOptions::new().unique(by_key))
        .await
        .unwrap();
    assert_eq!((twice.id, twice.created), (digest.id, false));
    let months: Vec<u32> = testing::enqueued::<Report>(&client)
        .iter()
        .map(|r| r.month)
        .collect();
    assert_eq!(months, [1, 1, 3]);

    // Once it ran, its key is free again.
    testing::drain(&client).await;
    let after = Report::new("acme".into(), 4)
        .enqueue(&client)
        .await
        .unwrap();
    assert!(after.created);
}

#[task(queue = "emails", version = 2, upgrade = never_upgrade)]
async fn versioned(ctx: &TaskContext, n: u32) -> Result<u32, TaskError> {
    Ok(n + ctx.version())
}

fn never_upgrade(version: u32, _: serde_json::Value) -> Result<Versioned, TaskError> {
    Err(TaskError::fatal(format!(
        "asked to upgrade version {version}"
    )))
}

#[tokio::test]
async fn perform_runs_a_versioned_task_as_its_own_version_without_upgrading_it() {
    let performed = testing::perform(Versioned::new(40)).await;
    assert_eq!(performed.output::<u32>(), 42, "{:?}", performed.result);
}
