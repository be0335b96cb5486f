//! The `natask` binary against a real nats-server per test: state is set
//! up with natask-runtime (enqueues, a worker), then the binary runs as an
//! operator would run it, and its `--json` output, tables and exit codes
//! are checked.

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use natask_runtime::{task, QueuePolicy, Runtime, State, TaskError, TaskState};
use natask_testing::NatsServer;
use serde_json::Value;
use tokio::sync::mpsc;

mod common;
use common::{connect, within, Worker, EVENT_DEADLINE};

#[task(queue = "cli_list")]
async fn listed_job(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

struct Flaky {
    healed: AtomicBool,
    succeeded: mpsc::UnboundedSender<u32>,
}

#[task(queue = "cli_dlq")]
async fn flaky_job(flaky: State<Arc<Flaky>>, n: u32) -> Result<(), TaskError> {
    if !flaky.healed.load(Ordering::SeqCst) {
        return Err(TaskError::fatal("the mail server said no"));
    }
    let _ = flaky.succeeded.send(n);
    Ok(())
}

#[task(queue = "cli_pause")]
async fn paused_job() -> Result<(), TaskError> {
    Ok(())
}

#[task(queue = "cli_enqueue")]
async fn double(n: u64) -> Result<u64, TaskError> {
    Ok(n * 2)
}

#[task(queue = "cli_signed")]
async fn signed_double(n: u64) -> Result<u64, TaskError> {
    Ok(n * 2)
}

#[task(queue = "cli_drift")]
async fn drifting_job() -> Result<(), TaskError> {
    Ok(())
}

#[task(queue = "cli_later")]
async fn later_job(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

/// Runs `natask` with `args` against `server`, the environment's NATS
/// settings removed so that only the arguments count.
async fn natask(server: &NatsServer, args: &[&str]) -> Output {
    let url = server.url();
    let mut all = vec!["--server", url.as_str()];
    all.extend_from_slice(args);
    run(&all).await
}

async fn run(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_natask"));
    for var in [
        "NATS_URL",
        "NATS_CONTEXT",
        "NATS_CREDS",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_TOKEN",
        "NATASK_PREFIX",
    ] {
        command.env_remove(var);
    }
    let output = within(
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("natask runs");
    output
}

/// Runs `natask` and expects success; returns stdout.
async fn ok(server: &NatsServer, args: &[&str]) -> String {
    let output = natask(server, args).await;
    assert!(
        output.status.success(),
        "natask {args:?} failed ({:?}): {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs `natask ... --json` and parses what it printed.
async fn json(server: &NatsServer, args: &[&str]) -> Value {
    let out = ok(server, args).await;
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("natask {args:?} printed no JSON ({e}): {out}"))
}

#[tokio::test]
async fn a_usage_error_exits_2_and_an_unreachable_server_exits_1() {
    let usage = run(&["queues", "--no-such-flag"]).await;
    assert_eq!(usage.status.code(), Some(2), "usage error");
    let usage = run(&["dlq", "replay"]).await;
    assert_eq!(usage.status.code(), Some(2), "replay needs an id or --all");

    // A port nothing listens on: a server started and stopped.
    let mut server = NatsServer::start();
    let url = server.url();
    server.kill();
    let down = run(&["--server", &url, "--token", "s3cret-token", "queues"]).await;
    assert_eq!(down.status.code(), Some(1), "unreachable server");
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.contains("could not connect to NATS"), "{stderr}");
    assert!(
        !stderr.contains("s3cret-token"),
        "the token is not echoed: {stderr}"
    );
}

#[tokio::test]
async fn queues_lists_every_queue_with_its_depth_and_oldest_task() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    for n in 0..3 {
        ListedJob::new(n).enqueue(&client).await.unwrap();
    }

    let queues = json(&server, &["queues", "--json"]).await;
    let queues = queues.as_array().expect("an array");
    assert_eq!(queues.len(), 1, "{queues:?}");
    let q = &queues[0];
    assert_eq!(q["queue"], "cli_list");
    assert_eq!(q["depth"], 3);
    assert_eq!(q["in_flight"], 0);
    assert_eq!(q["paused"], false);
    assert_eq!(q["dead_letters"], 0);
    assert!(q["oldest_task_at"].is_string(), "{q}");
    assert!(q["oldest_task_age_secs"].is_u64(), "{q}");

    let table = ok(&server, &["queues"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("QUEUE"), "{table}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..5], ["cli_list", "3", "0", "no", "0"], "{table}");

    let info = json(&server, &["queue", "info", "cli_list", "--json"]).await;
    assert_eq!(info["depth"], 3);

    let other = json(&server, &["--prefix", "other", "queues", "--json"]).await;
    assert_eq!(other, Value::Array(vec![]), "no queue under another prefix");

    // Looking at dead letters that were never made creates nothing.
    let none = json(&server, &["dlq", "ls", "--json"]).await;
    assert_eq!(none, Value::Array(vec![]));
    let missing = natask(
        &server,
        &["dlq", "show", "0192c4d2-7f4e-7cc0-9d1e-4a6f1c2b3d4e"],
    )
    .await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no dead letter with id"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(
        client.jetstream().get_stream("NATASK_DLQ").await.is_err(),
        "no dead-letter stream"
    );
}

#[tokio::test]
async fn pause_and_resume_reach_every_worker() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    // A worker creates the queue's consumer, which the pause is stored on.
    let worker = Worker::start(Runtime::builder(client.clone()).queues(["cli_pause"])).await;

    assert_eq!(
        ok(&server, &["queue", "pause", "cli_pause"]).await.trim(),
        "queue `cli_pause` paused until resumed"
    );
    assert!(client.queue("cli_pause").info().await.unwrap().is_paused());
    let queues = json(&server, &["queues", "--json"]).await;
    assert_eq!(queues[0]["paused"], true, "{queues}");
    assert_eq!(
        queues[0]["paused_until"],
        Value::Null,
        "indefinite: {queues}"
    );

    // Enqueued while paused: it waits, and is shown so (read from its
    // queue), enqueued by a program or by the CLI.
    let id = PausedJob::new().enqueue(&client).await.unwrap().id;
    let info = json(&server, &["queue", "info", "cli_pause", "--json"]).await;
    assert_eq!(info["depth"], 1, "{info}");
    let by_cli = ok(
        &server,
        &[
            "enqueue",
            "paused_job",
            "--queue",
            "cli_pause",
            "--json",
            "null",
        ],
    )
    .await;
    for waiting in [id.to_string().as_str(), by_cli.trim()] {
        let shown = json(&server, &["tasks", "show", waiting, "--json"]).await;
        assert_eq!(shown["state"], "queued", "{shown}");
        assert_eq!(shown["task"], "paused_job", "{shown}");
    }
    let by_cli: natask_runtime::TaskId = by_cli.trim().parse().unwrap();

    ok(&server, &["queue", "resume", "cli_pause"]).await;
    assert!(!client.queue("cli_pause").info().await.unwrap().is_paused());
    for id in [id, by_cli] {
        let done = client.wait(id, EVENT_DEADLINE).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded, "runs once resumed");
    }

    let missing = natask(&server, &["queue", "pause", "no_such_queue"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("has no stream yet"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    worker.stop().await;
}

#[tokio::test]
async fn dead_letters_are_listed_shown_replayed_and_purged() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let (succeeded, mut ran) = mpsc::unbounded_channel();
    let flaky = Arc::new(Flaky {
        healed: AtomicBool::new(false),
        succeeded,
    });
    let worker = Worker::start(
        Runtime::builder(client.clone())
            .queues(["cli_dlq"])
            .state(Arc::clone(&flaky)),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = FlakyJob::new(n).enqueue(&client).await.unwrap().id;
        assert_eq!(
            client.wait(id, EVENT_DEADLINE).await.unwrap().state,
            TaskState::Dead
        );
        ids.push(id.to_string());
    }

    let letters = json(&server, &["dlq", "ls", "--json"]).await;
    let letters = letters.as_array().expect("an array");
    assert_eq!(letters.len(), 3, "{letters:?}");
    for (letter, (id, n)) in letters.iter().zip(ids.iter().zip(0..)) {
        assert_eq!(letter["id"], id.as_str());
        assert_eq!(letter["queue"], "cli_dlq");
        assert_eq!(letter["task"], "flaky_job");
        assert_eq!(letter["reason"], "fatal");
        assert_eq!(letter["error"], "the mail server said no");
        assert_eq!(letter["attempts"], 1);
        assert_eq!(letter["payload"], serde_json::json!({ "n": n }));
    }
    let none = json(&server, &["dlq", "ls", "--task", "other_task", "--json"]).await;
    assert_eq!(none, Value::Array(vec![]));
    let queues = json(&server, &["queues", "--json"]).await;
    assert_eq!(queues[0]["dead_letters"], 3, "{queues}");

    let shown = json(&server, &["dlq", "show", &ids[0], "--json"]).await;
    assert_eq!(shown["headers"]["Natask-Reason"][0], "fatal", "{shown}");
    let table = ok(&server, &["dlq", "ls"]).await;
    assert!(table.contains("the mail server said no"), "{table}");

    // Purging needs a confirmation: none on a pipe without --yes.
    let refused = natask(&server, &["dlq", "purge", "--queue", "cli_dlq"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    // One replayed by id, the rest with --all; each then runs.
    flaky.healed.store(true, Ordering::SeqCst);
    ok(&server, &["dlq", "replay", &ids[0]]).await;
    assert_eq!(within(ran.recv()).await, Some(0));
    let out = ok(&server, &["dlq", "replay", "--all", "--queue", "cli_dlq"]).await;
    assert_eq!(out.trim(), "2 dead letters replayed");
    let mut rest = vec![
        within(ran.recv()).await.unwrap(),
        within(ran.recv()).await.unwrap(),
    ];
    rest.sort();
    assert_eq!(rest, [1, 2]);
    let left = json(&server, &["dlq", "ls", "--json"]).await;
    assert_eq!(left, Value::Array(vec![]), "replayed letters are removed");

    // A new dead letter, purged with --yes.
    flaky.healed.store(false, Ordering::SeqCst);
    let id = FlakyJob::new(9).enqueue(&client).await.unwrap().id;
    assert_eq!(
        client.wait(id, EVENT_DEADLINE).await.unwrap().state,
        TaskState::Dead
    );
    let out = ok(&server, &["dlq", "purge", "--queue", "cli_dlq", "--yes"]).await;
    assert_eq!(out.trim(), "1 dead letters deleted");
    assert_eq!(
        json(&server, &["dlq", "ls", "--json"]).await,
        Value::Array(vec![])
    );
    worker.stop().await;
}

#[tokio::test]
async fn an_enqueued_task_runs_and_tasks_show_and_wait_report_it() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let worker = Worker::start(Runtime::builder(client.clone()).queues(["cli_enqueue"])).await;

    let id = ok(
        &server,
        &[
            "enqueue",
            "double",
            "--queue",
            "cli_enqueue",
            "--json",
            r#"{"n":21}"#,
        ],
    )
    .await;
    let id = id.trim();
    let done = json(
        &server,
        &["tasks", "wait", id, "--timeout", "20s", "--json"],
    )
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"], 42, "{done}");
    assert_eq!(done["task"], "double");

    let shown = json(&server, &["tasks", "show", id, "--json"]).await;
    assert_eq!(shown["id"], id);
    assert_eq!(shown["state"], "succeeded");
    assert_eq!(shown["attempts"], 1);
    let table = ok(&server, &["tasks", "show", id]).await;
    assert!(table.contains("state:       succeeded"), "{table}");

    let unknown = natask(
        &server,
        &["tasks", "show", "0192c4d2-7f4e-7cc0-9d1e-4a6f1c2b3d4e"],
    )
    .await;
    assert_eq!(unknown.status.code(), Some(1));
    let bad = natask(&server, &["tasks", "show", "not-an-id"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a task id"));

    let refused = natask(
        &server,
        &[
            "enqueue",
            "double",
            "--queue",
            "cli_enqueue",
            "--json",
            "[1]",
        ],
    )
    .await;
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a payload must be an object"
    );
    worker.stop().await;
}

#[tokio::test]
async fn delayed_tasks_are_listed_as_schedules_and_cancelled() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let typed = LaterJob::new(1)
        .enqueue_in(&client, Duration::from_secs(3600))
        .await
        .unwrap()
        .id
        .to_string();
    let by_cli = ok(
        &server,
        &[
            "enqueue",
            "later_job",
            "--queue",
            "cli_later",
            "--json",
            r#"{"n":2}"#,
            "--in",
            "1h",
        ],
    )
    .await;
    let by_cli = by_cli.trim();

    let schedules = json(&server, &["schedules", "ls", "--json"]).await;
    let schedules = schedules.as_array().expect("an array");
    assert_eq!(schedules.len(), 2, "{schedules:?}");
    let mut keys: Vec<&str> = schedules
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    keys.sort();
    let mut wanted = [typed.as_str(), by_cli];
    wanted.sort();
    assert_eq!(keys, wanted);
    for s in schedules {
        assert_eq!(s["kind"], "delayed");
        assert_eq!(s["queue"], "cli_later");
        assert_eq!(s["task"], "later_job");
        assert!(s["schedule"].as_str().unwrap().starts_with("@at "), "{s}");
    }
    let shown = json(&server, &["tasks", "show", by_cli, "--json"]).await;
    assert_eq!(shown["state"], "delayed", "{shown}");

    let cancelled = json(&server, &["tasks", "cancel", by_cli, "--json"]).await;
    assert_eq!(cancelled["outcome"], "removed", "{cancelled}");
    let shown = json(&server, &["tasks", "show", by_cli, "--json"]).await;
    assert_eq!(shown["state"], "cancelled", "{shown}");
    let schedules = json(
        &server,
        &["schedules", "ls", "--queue", "cli_later", "--json"],
    )
    .await;
    assert_eq!(schedules.as_array().map(Vec::len), Some(1), "{schedules}");
    assert_eq!(schedules[0]["key"], typed.as_str());

    // A recurring schedule made at run time, listed and removed.
    client
        .recurring::<LaterJob>()
        .set("acme", "@every 1h", &LaterJob::new(3))
        .await
        .unwrap();
    let schedules = json(&server, &["schedules", "ls", "--json"]).await;
    let recurring = schedules
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "recurring")
        .unwrap_or_else(|| panic!("no recurring schedule in {schedules}"));
    assert_eq!(recurring["key"], "acme");
    assert_eq!(recurring["schedule"], "@every 1h");
    let subject = recurring["subject"].as_str().unwrap();
    assert_eq!(subject, "natask.s.cli_later.later_job.cron.acme");
    let table = ok(&server, &["schedules", "ls"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("recurring") && l.contains("acme")),
        "{table}"
    );

    ok(&server, &["schedules", "rm", subject]).await;
    assert!(client
        .recurring::<LaterJob>()
        .list()
        .await
        .unwrap()
        .is_empty());
    let gone = natask(&server, &["schedules", "rm", subject]).await;
    assert_eq!(gone.status.code(), Some(1), "nothing left to remove");
}

#[tokio::test]
async fn doctor_reports_the_server_and_its_features() {
    let server = NatsServer::start();
    let report = json(&server, &["doctor", "--json"]).await;
    assert!(report["server_version"].is_string(), "{report}");
    assert_eq!(report["replicas"], 1);
    let checks = report["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .map(|c| c["status"].clone())
    };
    assert_eq!(status("jetstream"), Some(Value::from("ok")), "{report}");
    assert_eq!(
        status("message_schedules"),
        Some(Value::from("ok")),
        "{report}"
    );
    assert_eq!(status("permissions"), Some(Value::from("ok")), "{report}");
}

#[tokio::test]
async fn doctor_names_what_the_user_may_not_do() {
    let server = NatsServer::start_with_config(
        "authorization { users = [\n\
         { user: narrow, password: narrow, permissions: { publish: { deny: [\"$JS.API.STREAM.INFO.KV_NATASK_WORKERS\"] } } }\n\
         ] }\n",
    );
    let url = format!("nats://127.0.0.1:{}", server.port());
    let output = run(&[
        "--server",
        &url,
        "--user",
        "narrow",
        "--password",
        "narrow",
        "doctor",
        "--json",
    ])
    .await;
    assert!(
        output.status.success(),
        "a refusal is a warning: {output:?}"
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let permissions = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "permissions")
        .cloned()
        .unwrap();
    assert_eq!(permissions["status"], "warn", "{report}");
    assert_eq!(
        permissions["detail"],
        "the NATS user may not publish to `$JS.API.STREAM.INFO.KV_NATASK_WORKERS` \
         (docs/security.md lists what each role needs)"
    );
}

#[tokio::test]
async fn drift_from_the_default_policy_is_reported_by_queue_drift_and_doctor() {
    let server = NatsServer::start();
    let client = connect(&server)
        .await
        .with_queue(QueuePolicy::new("cli_drift").max_in_flight(20))
        .unwrap();
    // The worker creates the consumer with the application's policy.
    let worker = Worker::start(Runtime::builder(client.clone()).queues(["cli_drift"])).await;

    let drift = json(&server, &["queue", "drift", "cli_drift", "--json"]).await;
    assert_eq!(
        drift,
        serde_json::json!([{ "field": "max_in_flight", "live": "20", "wanted": "10000" }])
    );
    let table = ok(&server, &["queue", "drift", "cli_drift"]).await;
    assert!(table.contains("max_in_flight  20    10000"), "{table}");

    let report = json(&server, &["doctor", "--json"]).await;
    let queue = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "queue")
        .unwrap_or_else(|| panic!("no queue check in {report}"));
    assert_eq!(queue["status"], "warn", "{report}");
    assert!(queue["detail"]
        .as_str()
        .unwrap()
        .contains("max_in_flight: live 20, wanted 10000"));
    worker.stop().await;
}

#[tokio::test]
async fn user_password_and_token_are_used_and_never_echoed() {
    let server = NatsServer::start_with(&["--user", "ada", "--pass", "pw-7f3a"]);
    let wrong = natask(
        &server,
        &["--user", "ada", "--password", "not-pw-91c2", "queues"],
    )
    .await;
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("could not connect"), "{stderr}");
    assert!(
        !stderr.contains("not-pw-91c2"),
        "the password is not echoed: {stderr}"
    );
    let right = json(
        &server,
        &["--user", "ada", "--password", "pw-7f3a", "queues", "--json"],
    )
    .await;
    assert_eq!(right, Value::Array(vec![]));

    let server = NatsServer::start_with(&["--auth", "tok-55e1"]);
    let right = json(&server, &["--token", "tok-55e1", "queues", "--json"]).await;
    assert_eq!(right, Value::Array(vec![]));
    let none = natask(&server, &["queues"]).await;
    assert_eq!(none.status.code(), Some(1), "no token, no connection");
}

#[tokio::test]
async fn workers_and_catalog_show_a_running_runtime_and_enqueue_checks_the_schema() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let worker = Worker::start(
        Runtime::builder(client.clone())
            .queues(["cli_enqueue"])
            .concurrency(4)
            .heartbeat(Duration::from_secs(1)),
    )
    .await;
    // The runtime writes the registry and the catalog once it runs.
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    while client.workers().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let workers = json(&server, &["workers", "--json"]).await;
    assert_eq!(workers[0]["pid"], std::process::id(), "{workers}");
    assert_eq!(workers[0]["queues"][0]["queue"], "cli_enqueue");
    assert_eq!(workers[0]["queues"][0]["concurrency"], 4);
    assert_eq!(workers[0]["queues"][0]["tasks"][0], "double");
    let table = ok(&server, &["workers"]).await;
    assert!(table.contains("cli_enqueue 0/4"), "{table}");

    let catalog = json(&server, &["catalog", "--json"]).await;
    assert_eq!(catalog[0]["task"], "double", "{catalog}");
    assert_eq!(catalog[0]["queue"], "cli_enqueue");
    assert_eq!(catalog[0]["schema"]["properties"]["n"]["type"], "integer");
    let table = ok(&server, &["catalog"]).await;
    assert!(table.contains("n: integer"), "{table}");

    // Checked against the schema before anything is sent.
    let wrong = natask(
        &server,
        &["enqueue", "double", "--json", r#"{"n":"seven"}"#],
    )
    .await;
    assert_eq!(wrong.status.code(), Some(1));
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("does not match task `double`'s schema")
            && said.contains("at `/n`: expected integer, got the string \"seven\"")
            && said.contains("nothing was sent"),
        "{said}"
    );
    let missing = natask(&server, &["enqueue", "double", "--json", "{}"]).await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("the field `n` is missing"));
    let unknown = natask(&server, &["enqueue", "nope", "--json", "{}"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("give it with --queue"));
    let queues = json(&server, &["queues", "--json"]).await;
    assert_eq!(queues[0]["depth"], 0, "nothing was stored: {queues}");
    assert!(queues[0]["rate_per_sec"].is_number(), "{queues}");

    // The queue comes from the catalog.
    let id = ok(&server, &["enqueue", "double", "--json", r#"{"n":4}"#]).await;
    let done = json(
        &server,
        &["tasks", "wait", id.trim(), "--timeout", "20s", "--json"],
    )
    .await;
    assert_eq!(done["result"], 8, "{done}");

    worker.stop().await;
    let workers = json(&server, &["workers", "--json"]).await;
    assert_eq!(workers, serde_json::json!([]), "it left when it stopped");
}

#[tokio::test]
async fn enqueue_signs_with_a_key_file_for_workers_that_require_signatures() {
    use futures_util::StreamExt;
    let server = NatsServer::start();
    let client = connect(&server).await;
    let key = natask_runtime::SigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("producer.seed");
    std::fs::write(&seed, key.to_hex()).unwrap();
    let seed = seed.to_str().unwrap();
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let worker = Worker::start(
        Runtime::builder(client.clone())
            .queues(["cli_signed"])
            .require_signatures([key.public_key()]),
    )
    .await;

    let args = |payload: &'static str, signed: bool| {
        let mut args = vec!["enqueue", "signed_double", "--queue", "cli_signed"];
        if signed {
            args.extend(["--signing-key", seed]);
        }
        args.extend(["--json", payload]);
        args
    };
    let id = ok(&server, &args(r#"{"n":5}"#, true)).await;
    let done = json(
        &server,
        &["tasks", "wait", id.trim(), "--timeout", "20s", "--json"],
    )
    .await;
    assert_eq!(done["result"], 10, "{done}");

    let unsigned = ok(&server, &args(r#"{"n":6}"#, false)).await;
    let letter = within(dead.next()).await.unwrap();
    let reason = letter.headers.as_ref().and_then(|h| h.get("Natask-Reason"));
    assert_eq!(reason.map(|v| v.as_str()), Some("signature"));
    let named = letter.headers.as_ref().and_then(|h| h.get("Natask-Id"));
    assert_eq!(named.map(|v| v.as_str()), Some(unsigned.trim()));
    worker.stop().await;

    let missing = natask(
        &server,
        &[
            "enqueue",
            "signed_double",
            "--queue",
            "cli_signed",
            "--signing-key",
            "/nonexistent/seed",
            "--json",
            "{}",
        ],
    )
    .await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("could not read the key file"));
}
