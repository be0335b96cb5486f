//! Hostile input against one running worker: every hand-published
//! message that is not a good task ends in a readable dead letter (or,
//! when it is a task after all, runs once), the tasks around it run
//! exactly once, the worker keeps serving and the queue ends empty.
//! Hostile messages are published as explicit wire format 1.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use natask_runtime::{task, EnqueueOptions, QueuePolicy, State, TaskError, TaskId, TaskState};
use tokio::sync::mpsc;

use crate::{builder, connect, drained, header, publish_raw, recv_n, within, Running};

const QUEUE: &str = "it_hostile";
const SUBJECT: &str = "natask.q.it_hostile.tally";
/// The test server's `max_payload`: small, so messages at the limit are
/// quick to publish, large enough for 100 000 nested arrays.
const MAX_PAYLOAD: usize = 256 * 1024;
/// JetStream refuses a message whose header block is longer, whatever
/// `max_payload` allows (error 10097).
const MAX_HEADERS: usize = 65_535;

pub(crate) struct Seen(mpsc::UnboundedSender<u64>);

#[task(queue = "it_hostile")]
async fn tally(seen: State<Seen>, n: u64) -> Result<u64, TaskError> {
    let _ = seen.0.send(n);
    Ok(n)
}

/// Any JSON: serde_json builds nested arrays recursively, up to its
/// recursion limit.
#[task(queue = "it_hostile")]
async fn tree(seen: State<Seen>, value: serde_json::Value) -> Result<u64, TaskError> {
    let _ = (seen.0.send(0), value);
    Ok(0)
}

#[task(queue = "it_hostile_reuse")]
async fn reused(seen: State<Seen>, n: u64) -> Result<u64, TaskError> {
    let _ = seen.0.send(n);
    Ok(n)
}

/// One hand-published message and what must become of it.
struct Case {
    name: &'static str,
    /// Its `Natask-Id`, which names its dead letter.
    id: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// `Some((reason, error fragment))`: parked; `None`: it is a valid
    /// task and runs (its body's `n`).
    parked: Option<(&'static str, &'static str)>,
}

impl Case {
    /// A format-1 `tally` message with a fresh id.
    fn tally(name: &'static str, body: impl Into<Vec<u8>>) -> Case {
        let id = TaskId::new().to_string();
        Case {
            name,
            headers: vec![
                ("Natask-Format", "1".to_owned()),
                ("Natask-Task", "tally".to_owned()),
                ("Natask-Id", id.clone()),
            ],
            id,
            body: body.into(),
            parked: None,
        }
    }

    fn parked(mut self, reason: &'static str, error: &'static str) -> Case {
        self.parked = Some((reason, error));
        self
    }

    /// Replaces (or adds) header `name`.
    fn with(mut self, name: &'static str, value: impl Into<String>) -> Case {
        let value = value.into();
        if name == "Natask-Id" {
            self.id.clone_from(&value);
        }
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }

    /// Adds header `X-Big`, sized so that the header block is `len` bytes.
    fn with_headers_of(self, len: usize) -> Case {
        let field = "X-Big".len() + 4;
        let value = "a".repeat(len - self.headers_len() - field);
        let case = self.with("X-Big", value);
        assert_eq!(case.headers_len(), len);
        case
    }

    fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    /// Bytes of its headers on the wire (`NATS/1.0\r\n`, the fields,
    /// `\r\n`), which count against `max_payload` with the body.
    fn headers_len(&self) -> usize {
        10 + self
            .headers
            .iter()
            .map(|(n, v)| n.len() + 2 + v.len() + 2)
            .sum::<usize>()
            + 2
    }
}

fn pairs_map(case: &Case) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in case.header_pairs() {
        headers.insert(name, value);
    }
    headers
}

/// A valid `tally` body of exactly `len` bytes (JSON allows the padding).
fn padded_body(n: u64, len: usize) -> Vec<u8> {
    let mut body = format!("{{\"n\":{n}").into_bytes();
    body.resize(len - 1, b' ');
    body.push(b'}');
    body
}

fn hostile_cases(max: usize) -> Vec<Case> {
    let nested = |field: &str, rest: &str| {
        let depth = 100_000;
        let mut body = format!("{{\"{field}\":").into_bytes();
        body.extend(std::iter::repeat_n(b'[', depth));
        body.extend(std::iter::repeat_n(b']', depth));
        body.extend(format!("{rest}}}").into_bytes());
        body
    };
    // fits the queue, but not beside a dead letter's own headers
    let big = MAX_HEADERS - 200;
    let mut at_limit = Case::tally("at_max_payload", Vec::new());
    at_limit.body = padded_body(1003, max - at_limit.headers_len());
    vec![
        Case::tally("invalid_utf8", b"{\"n\":\"\xff\xfe\xc0\"}".to_vec())
            .parked("decode", "payload does not decode"),
        // built as a value: serde_json's recursion limit (128) stops it
        Case::tally("nested_100k", nested("value", ""))
            .with("Natask-Task", "tree")
            .parked("decode", "recursion limit exceeded"),
        // a field the payload does not have: skipped without recursion
        Case::tally("nested_100k_skipped", nested("deep", ",\"n\":1004")),
        Case::tally("wrong_type_string", br#"{"n":"seven"}"#.to_vec())
            .parked("decode", "invalid type: string \"seven\", expected u64"),
        Case::tally("wrong_type_negative", br#"{"n":-1}"#.to_vec())
            .parked("decode", "invalid value: integer `-1`, expected u64"),
        Case::tally("wrong_type_float", br#"{"n":1.5}"#.to_vec())
            .parked("decode", "invalid type: floating point `1.5`, expected u64"),
        Case::tally("wrong_type_null", b"null".to_vec()).parked("decode", "invalid type: null"),
        Case::tally("missing_field", b"{}".to_vec()).parked("decode", "missing field `n`"),
        Case::tally("unknown_format", br#"{"n":1}"#.to_vec())
            .with("Natask-Format", "3")
            .parked("unknown_format", "is in wire format `3`"),
        Case::tally("format_with_control_chars", br#"{"n":1}"#.to_vec())
            .with("Natask-Format", "banana\u{7}\u{1b}[2J")
            .parked("unknown_format", "is in wire format `banana"),
        Case::tally("id_not_a_uuid", br#"{"n":1}"#.to_vec())
            .with("Natask-Id", "not-a-uuid")
            .parked("not_a_task", "no valid `Natask-Id` header"),
        Case::tally("id_empty", br#"{"n":1}"#.to_vec())
            .with("Natask-Id", "")
            .parked("not_a_task", "no valid `Natask-Id` header"),
        Case::tally("id_with_control_chars", br#"{"n":1}"#.to_vec())
            .with("Natask-Id", "\u{1b}[2J\u{0}\u{7f}")
            .parked("not_a_task", "no valid `Natask-Id` header"),
        Case::tally("unknown_task", br#"{"n":1}"#.to_vec())
            .with("Natask-Task", "nobody_knows_me")
            .parked("unknown_task", "no handler for task `nobody_knows_me`"),
        Case::tally("task_name_with_control_chars", br#"{"n":1}"#.to_vec())
            .with("Natask-Task", "tally\u{1}\u{7f}")
            .parked("unknown_task", "no handler for task `tally"),
        Case::tally("task_name_with_subject_tokens", br#"{"n":1}"#.to_vec())
            .with("Natask-Task", "a.b.>")
            .parked("unknown_task", "no handler for task `a.b.>`"),
        Case::tally("huge_header_bad_body", b"nope".to_vec())
            .with_headers_of(big)
            .parked("decode", "payload does not decode"),
        Case::tally("huge_header", br#"{"n":1001}"#.to_vec()).with_headers_of(big),
        Case::tally("control_chars_in_a_header", br#"{"n":1002}"#.to_vec())
            .with("X-Evil", "\u{0}\u{7}\u{1b}[31mred\t"),
        at_limit,
    ]
}

#[tokio::test]
async fn one_worker_survives_hostile_messages_and_runs_every_task_around_them_once() {
    let server =
        natask_testing::NatsServer::start_with_config(&format!("max_payload: {MAX_PAYLOAD}\n"));
    let client = connect(&server).await;
    assert_eq!(client.nats().server_info().max_payload, MAX_PAYLOAD);
    let mut letters = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runtime = builder(&client, &[QUEUE])
        .state(Seen(tx))
        .unknown_task_grace(2, Duration::from_millis(50));
    let running = Running::start(runtime).await;

    // a task whose id a hostile message reuses below
    let first = TaskId::new();
    let options = EnqueueOptions::new().id(first);
    client.enqueue_with(&Tally::new(0), options).await.unwrap();
    assert_eq!(within(rx.recv()).await, Some(0));
    let done = client.wait(first, crate::EVENT_DEADLINE).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);

    let mut cases = hostile_cases(MAX_PAYLOAD);
    cases.push(
        Case::tally("reused_id", br#"{"n":1006}"#.to_vec())
            .with("Natask-Id", first.to_string())
            .with("Nats-Msg-Id", "another-message")
            .parked("duplicate_id", "a task id names one task"),
    );
    let mut normal = Vec::new();
    for (n, case) in (1..).zip(&cases) {
        publish_raw(&client, SUBJECT, &case.header_pairs(), case.body.clone()).await;
        Tally::new(n).enqueue(&client).await.unwrap();
        normal.push(n);
    }

    // one byte over the limit is refused at publish, naming the sizes
    let over = Case::tally("over_max_payload", Vec::new());
    let mut headers = pairs_map(&over);
    let body = padded_body(1, MAX_PAYLOAD + 1 - over.headers_len());
    let refused = client
        .jetstream()
        .publish_with_headers(SUBJECT, headers.clone(), body.into())
        .await
        .unwrap_err();
    assert_eq!(
        refused.kind(),
        async_nats::jetstream::context::PublishErrorKind::MaxPayloadExceeded
    );
    assert!(
        refused.to_string().contains(&format!(
            "Payload size limit of {MAX_PAYLOAD} exceeded by message size of {}",
            MAX_PAYLOAD + 1
        )),
        "{refused}"
    );
    // so is a header block over JetStream's limit
    let over =
        Case::tally("headers_over_64k", br#"{"n":1}"#.to_vec()).with_headers_of(MAX_HEADERS + 1);
    let refused = client
        .jetstream()
        .publish_with_headers(SUBJECT, pairs_map(&over), over.body.clone().into())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("header size exceeds maximum allowed of 64k"),
        "{refused}"
    );
    // the first task's message again, inside the duplicate window: dropped
    headers.insert("Natask-Id", first.to_string().as_str());
    headers.insert("Nats-Msg-Id", first.to_string().as_str());
    let again = client
        .jetstream()
        .publish_with_headers(SUBJECT, headers, br#"{"n":1005}"#.to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(again.duplicate, "JetStream deduplicates a republished task");

    // a normal task after all hostile ones: the worker still serves
    Tally::new(9999).enqueue(&client).await.unwrap();
    normal.push(9999);

    let parked: Vec<&Case> = cases.iter().filter(|c| c.parked.is_some()).collect();
    let mut got = BTreeMap::new();
    for _ in 0..parked.len() {
        let next = tokio::time::timeout(crate::EVENT_DEADLINE, letters.next()).await;
        let Ok(Some(letter)) = next else {
            let missing: Vec<_> = parked
                .iter()
                .filter(|c| !got.contains_key(&c.id))
                .map(|c| c.name)
                .collect();
            panic!("no dead letter for {missing:?}");
        };
        let id = header(&letter, "Natask-Id");
        assert!(
            got.insert(id.clone(), letter).is_none(),
            "one dead letter per message ({id:?})"
        );
    }
    let mut expected: Vec<u64> = normal;
    expected.extend([1001, 1002, 1003, 1004]);
    let mut handled = recv_n(&mut rx, expected.len()).await;
    drained(&client, QUEUE).await;
    assert!(rx.try_recv().is_err(), "no task ran twice");
    handled.sort_unstable();
    expected.sort_unstable();
    assert_eq!(handled, expected, "every runnable task ran once");

    for case in parked {
        let (reason, fragment) = case.parked.unwrap();
        let letter = got
            .get(&case.id)
            .unwrap_or_else(|| panic!("{}: no dead letter", case.name));
        let error = header(letter, "Natask-Error");
        assert_eq!(
            header(letter, "Natask-Reason"),
            reason,
            "{}: {error}",
            case.name
        );
        assert_eq!(header(letter, "Natask-Queue"), QUEUE, "{}", case.name);
        assert!(error.contains(fragment), "{}: {error}", case.name);
        assert!(
            !error.chars().any(char::is_control),
            "{}: the error is readable: {error:?}",
            case.name
        );
        let token = letter.subject.split('.').nth(3).unwrap();
        assert!(
            ["tally", "tree", "_invalid", "nobody_knows_me"].contains(&token),
            "{}: {}",
            case.name,
            letter.subject
        );
        if header(letter, "Natask-Truncated").is_empty() {
            assert_eq!(letter.payload, case.body, "{}: the body is kept", case.name);
        }
    }
    let cut = cases
        .iter()
        .find(|c| c.name == "huge_header_bad_body")
        .unwrap();
    let cut = &got[&cut.id];
    assert!(
        header(cut, "X-Big").is_empty(),
        "a dead letter drops foreign headers that leave it no room"
    );
    let dlq = client.jetstream().get_stream("NATASK_DLQ").await.unwrap();
    assert_eq!(
        dlq.get_info().await.unwrap().state.messages,
        got.len() as u64
    );

    // the reused id's letter did not touch the first task's state
    let info = client.task_info(first).await.unwrap().unwrap();
    assert_eq!(
        (info.state, info.result, info.attempts),
        (TaskState::Succeeded, Some(serde_json::json!(0)), 1)
    );
    // the decode failures with valid ids are dead
    let info = client
        .task_info(cases[0].id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(info.map(|i| i.state), Some(TaskState::Dead));
    running.stop().await;
}

#[tokio::test]
async fn a_reused_task_id_is_parked_without_running_or_touching_the_first_task() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let mut letters = client.nats().subscribe("natask.dlq.>").await.unwrap();
    // the first task is still queued when a second message reuses its id
    let id = TaskId::new();
    let options = EnqueueOptions::new().id(id);
    client.enqueue_with(&Tally::new(1), options).await.unwrap();
    let queued = client.task_info(id).await.unwrap().unwrap();
    assert_eq!(queued.state, TaskState::Queued);
    let id_text = id.to_string();
    let headers = [
        ("Natask-Format", "1"),
        ("Natask-Task", "tally"),
        ("Natask-Id", id_text.as_str()),
        ("Nats-Msg-Id", "a-new-message"),
    ];
    publish_raw(&client, SUBJECT, &headers, &br#"{"n":2}"#[..]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &[QUEUE]).state(Seen(tx))).await;

    let letter = within(letters.next()).await.unwrap();
    assert_eq!(within(rx.recv()).await, Some(1));
    drained(&client, QUEUE).await;
    assert!(rx.try_recv().is_err(), "the second message never ran");
    assert_eq!(header(&letter, "Natask-Reason"), "duplicate_id");
    assert_eq!(
        header(&letter, "Natask-Id"),
        id_text,
        "the original headers"
    );
    let error = header(&letter, "Natask-Error");
    assert!(
        error.starts_with(&format!("task id {id} already names a task enqueued at ")),
        "{error}"
    );
    assert!(error.contains("a task id names one task"), "{error}");
    // its letter has an id of its own: the first task's name stays free
    // for the first task's own dead letter, and `get(id)` finds that one
    let own = letter.subject.rsplit('.').next().unwrap();
    assert_ne!(own, id_text);
    assert!(
        header(&letter, "Nats-Msg-Id").starts_with(&format!("{own}:dlq:")),
        "{}",
        header(&letter, "Nats-Msg-Id")
    );
    let info = client.wait(id, crate::EVENT_DEADLINE).await.unwrap();
    assert_eq!(
        (info.state, info.result, info.attempts),
        (TaskState::Succeeded, Some(serde_json::json!(1)), 1)
    );
    running.stop().await;
}

#[tokio::test]
async fn enqueueing_a_used_id_after_the_duplicate_window_does_not_replace_the_task() {
    let server = natask_testing::NatsServer::start();
    let queue = "it_hostile_reuse";
    let client = connect(&server)
        .await
        .with_queue(QueuePolicy::new(queue).dedup_window(Duration::from_millis(200)))
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &[queue]).state(Seen(tx))).await;

    let id = TaskId::new();
    let options = EnqueueOptions::new().id(id);
    let stored = client.enqueue_with(&Reused::new(1), options).await.unwrap();
    assert!(stored.created);
    assert_eq!(within(rx.recv()).await, Some(1));
    let first = client.wait(id, crate::EVENT_DEADLINE).await.unwrap();
    // Time passing is what is tested: JetStream no longer remembers the
    // id, so only natask's own rule keeps the task from being stored again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let options = EnqueueOptions::new().id(id);
    let again = client.enqueue_with(&Reused::new(2), options).await.unwrap();
    assert_eq!((again.id, again.created), (id, false));
    assert_eq!(crate::queued(&client, queue).await, 0, "nothing was stored");
    running.stop().await;
    assert!(rx.try_recv().is_err(), "the second task never ran");
    let info = client.task_info(id).await.unwrap().unwrap();
    assert_eq!(info, first, "the first task's state is untouched");
}

#[tokio::test]
async fn a_message_reusing_a_waiting_delayed_tasks_id_is_parked_and_the_delayed_task_kept() {
    let server = natask_testing::NatsServer::start();
    let client = connect(&server).await;
    let mut letters = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let id = TaskId::new();
    let options = EnqueueOptions::new()
        .id(id)
        .delay(Duration::from_secs(3600));
    client.enqueue_with(&Tally::new(1), options).await.unwrap();
    let waiting = client.task_info(id).await.unwrap().unwrap();
    assert_eq!(waiting.state, TaskState::Delayed);
    let id_text = id.to_string();
    let headers = [
        ("Natask-Format", "1"),
        ("Natask-Task", "tally"),
        ("Natask-Id", id_text.as_str()),
        ("Nats-Msg-Id", "not-the-schedule"),
    ];
    publish_raw(&client, SUBJECT, &headers, &br#"{"n":2}"#[..]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = Running::start(builder(&client, &[QUEUE]).state(Seen(tx))).await;

    let letter = within(letters.next()).await.unwrap();
    assert_eq!(header(&letter, "Natask-Reason"), "duplicate_id");
    assert!(
        header(&letter, "Natask-Error").contains("(`tally` on queue `it_hostile`, delayed)"),
        "{}",
        header(&letter, "Natask-Error")
    );
    running.stop().await;
    assert!(rx.try_recv().is_err(), "the second message never ran");
    assert_eq!(client.task_info(id).await.unwrap().unwrap(), waiting);
    // the delayed task still waits, and can be cancelled
    assert_eq!(
        client.cancel(id).await.unwrap(),
        natask_runtime::Cancelled::Removed
    );
    drained(&client, QUEUE).await;
}
