//! The example binaries as real OS processes against a real nats-server:
//! the linker pitfall, and two workers sharing one queue.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use natask_example_tasks::{Format, ResizeImage, SendEmail, Target};
use natask_runtime::Client;
use natask_testing::NatsServer;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const DEADLINE: Duration = Duration::from_secs(60);

struct Worker {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn start(bin: &str, url: &str, concurrency: usize) -> Worker {
        Self::start_with(bin, &[("NATS_URL", url)], concurrency).await
    }

    /// Starts `bin` with the environment variables `env`.
    async fn start_with(bin: &str, env: &[(&str, &str)], concurrency: usize) -> Worker {
        let mut child = Command::new(bin)
            .envs(env.iter().copied())
            .env("NATASK_CONCURRENCY", concurrency.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the worker binary");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut worker = Worker { child, lines };
        let ready = worker.next_line().await.expect("worker printed a line");
        assert_eq!(
            ready,
            r#"worker ready: serving {"analytics__count_signup": ["user_signed_up"], "emails": ["send_email"], "images": ["resize_image"], "mailer__greet": ["user_signed_up"]}"#
        );
        worker
    }

    async fn next_line(&mut self) -> Option<String> {
        tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .expect("worker output in time")
            .expect("read worker output")
    }

    /// SIGTERM by pid, then the rest of the output and the exit status.
    async fn terminate(mut self) -> Vec<String> {
        let pid = self.child.id().expect("worker still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let mut rest = Vec::new();
        while let Some(line) = self.next_line().await {
            rest.push(line);
        }
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "worker exited with {status}");
        rest
    }
}

fn id_of(line: &str) -> &str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("id="))
        .unwrap_or_else(|| panic!("no id in {line:?}"))
}

#[tokio::test]
async fn a_worker_linked_only_through_cargo_toml_and_one_use_line_finds_every_task() {
    let server = NatsServer::start();
    let client = Client::connect(&server.url()).await.unwrap();
    let mut worker = Worker::start(env!("CARGO_BIN_EXE_worker"), &server.url(), 4).await;
    let email = SendEmail::new("ada@example.com".into(), "hi".into())
        .enqueue(&client)
        .await
        .unwrap()
        .id;
    let image = ResizeImage::new(
        "https://x/1.png".into(),
        Target {
            width: 10,
            format: Format::Png,
        },
    )
    .enqueue(&client)
    .await
    .unwrap()
    .id;
    let mut want: HashSet<String> = [
        format!("send_email {email}"),
        format!("resize_image {image}"),
    ]
    .into();
    while !want.is_empty() {
        let line = worker.next_line().await.expect("worker alive");
        let task = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            want.remove(&format!("{task} {}", id_of(&line))),
            "unexpected line {line:?}"
        );
    }
    assert_eq!(worker.terminate().await, ["worker stopped"]);
}

/// `NATS_CONTEXT` names a context (under `$XDG_CONFIG_HOME/nats/context`)
/// whose credentials file is the only way into an operator-mode server;
/// `NATS_URL` points nowhere, so only the context can have connected.
#[tokio::test]
async fn the_worker_connects_with_the_nats_context_named_by_nats_context() {
    let operator = natask_testing::Operator::new();
    let server = NatsServer::start_with_config(&operator.server_config());
    let creds = operator.user("example");
    let config = tempfile::tempdir().unwrap();
    let contexts = config.path().join("nats").join("context");
    std::fs::create_dir_all(&contexts).unwrap();
    std::fs::write(
        contexts.join("demo.json"),
        format!(
            "{{\"url\": {:?}, \"creds\": {:?}}}",
            server.url(),
            creds.path().display().to_string()
        ),
    )
    .unwrap();
    let env = [
        ("NATS_CONTEXT", "demo"),
        ("XDG_CONFIG_HOME", config.path().to_str().unwrap()),
        ("NATS_URL", "nats://127.0.0.1:1"),
    ];
    let mut worker = Worker::start_with(env!("CARGO_BIN_EXE_worker"), &env, 1).await;

    let options = async_nats::ConnectOptions::with_credentials_file(creds.path())
        .await
        .unwrap();
    let client = Client::connect_with(&server.url(), options).await.unwrap();
    let id = SendEmail::new("ada@example.com".into(), "hi".into())
        .enqueue(&client)
        .await
        .unwrap()
        .id;
    let line = worker.next_line().await.expect("worker alive");
    assert_eq!(id_of(&line), id.to_string(), "{line}");
    assert_eq!(worker.terminate().await, ["worker stopped"]);
}

#[tokio::test]
async fn without_the_use_line_the_worker_refuses_to_start_and_says_how_to_fix_it() {
    let server = NatsServer::start();
    let out = tokio::time::timeout(
        DEADLINE,
        Command::new(env!("CARGO_BIN_EXE_worker-unlinked"))
            .env("NATS_URL", server.url())
            .env("RUST_BACKTRACE", "0")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "Error: no tasks are registered, so there is nothing to serve; if the tasks live in a library crate, \
             add `use your_tasks_crate as _;` to the worker's main.rs"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn two_worker_processes_share_a_queue_and_run_each_task_exactly_once() {
    const TASKS: usize = 2_000;
    let server = NatsServer::start();
    let client = Client::connect(&server.url()).await.unwrap();
    let bin = env!("CARGO_BIN_EXE_worker");
    let mut workers = [
        Worker::start(bin, &server.url(), 8).await,
        Worker::start(bin, &server.url(), 8).await,
    ];

    let mut enqueued = HashSet::new();
    for i in 0..TASKS {
        let id = SendEmail::new(format!("u{i}@example.com"), "bulk".into())
            .enqueue(&client)
            .await
            .unwrap()
            .id;
        enqueued.insert(id.to_string());
    }

    let mut handled = Vec::new();
    let mut per_worker = [0_usize; 2];
    let [a, b] = &mut workers;
    while handled.len() < TASKS {
        let (who, line) = tokio::select! {
            line = a.next_line() => (0, line.expect("worker 0 alive")),
            line = b.next_line() => (1, line.expect("worker 1 alive")),
        };
        assert!(line.starts_with("handled send_email "), "{line}");
        per_worker[who] += 1;
        handled.push(id_of(&line).to_owned());
    }
    let [a, b] = workers;
    // after a graceful stop, nothing else was handled
    assert_eq!(a.terminate().await, ["worker stopped"]);
    assert_eq!(b.terminate().await, ["worker stopped"]);

    let unique: HashSet<_> = handled.iter().cloned().collect();
    assert_eq!(unique.len(), TASKS, "a task ran twice");
    assert_eq!(unique, enqueued, "every enqueued task ran");
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "both workers did work: {per_worker:?}"
    );
    let stream = client
        .jetstream()
        .get_stream("NATASK_Q_emails")
        .await
        .unwrap();
    assert_eq!(stream.get_info().await.unwrap().state.messages, 0);
}
