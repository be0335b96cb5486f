//! Fault injection with real processes: a worker killed with SIGKILL, a
//! task that crashes its worker every time, a graceful stop mid-run; a
//! queue policy's fleet-wide limit held across worker processes; and a
//! 3-node JetStream cluster losing a server mid-run (`cluster`).

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use natask_runtime::wire;
use natask_testing::NatsServer;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

mod cluster;

const DEADLINE: Duration = Duration::from_secs(60);

struct Worker {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn start(url: &str, envs: &[(&str, &str)]) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fault-worker"))
            .env("NATS_URL", url)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            // natask's logs, when RUST_LOG is set (see src/main.rs)
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start fault-worker");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut w = Worker { child, lines };
        assert_eq!(w.line().await.as_deref(), Some("ready"));
        w
    }

    async fn line(&mut self) -> Option<String> {
        tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .expect("worker output in time")
            .expect("read worker output")
    }

    fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    async fn signal(&mut self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Remaining output until the process ends, and whether it exited cleanly.
    async fn finish(mut self) -> (Vec<String>, bool) {
        let mut rest = Vec::new();
        while let Some(line) = self.line().await {
            rest.push(line);
        }
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        (rest, status.success())
    }
}

fn done_id(line: &str) -> Option<String> {
    line.strip_prefix("done ")
        .map(|r| r.split(' ').next().unwrap().to_owned())
}

async fn enqueue_work(client: &async_nats::jetstream::Context, n: u64) -> String {
    // published the way any producer would (docs/wire-format.md)
    let id = natask_runtime::TaskId::new().to_string();
    let mut h = async_nats::HeaderMap::new();
    h.insert(wire::HEADER_TASK, "work");
    h.insert(wire::HEADER_ID, id.as_str());
    h.insert(wire::HEADER_MSG_ID, id.as_str());
    client
        .publish_with_headers("natask.q.faults.work", h, format!("{{\"n\":{n}}}").into())
        .await
        .unwrap()
        .await
        .unwrap();
    id
}

async fn setup(server: &NatsServer, tasks: u64) -> HashSet<String> {
    let client = natask_runtime::Client::connect(&server.url())
        .await
        .unwrap();
    let js = client.jetstream();
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "NATASK_Q_faults".into(),
        subjects: vec!["natask.q.faults.>".into()],
        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut ids = HashSet::new();
    for n in 0..tasks {
        ids.insert(enqueue_work(js, n).await);
    }
    ids
}

#[tokio::test]
async fn a_worker_killed_mid_run_loses_nothing_and_reruns_at_most_its_in_flight_tasks() {
    const TASKS: u64 = 5_000;
    const CONCURRENCY: usize = 16;
    let server = NatsServer::start();
    let ids = setup(&server, TASKS).await;
    let conc = CONCURRENCY.to_string();
    let envs = [
        ("NATASK_CONCURRENCY", conc.as_str()),
        ("NATASK_ACK_WAIT_MS", "2000"),
        ("NATASK_WORK_MS", "1"),
    ];

    let mut runs: HashMap<String, u32> = HashMap::new();
    let mut a = Worker::start(&server.url(), &envs).await;
    while runs.len() < 1_000 {
        let line = a.line().await.expect("worker a alive");
        *runs.entry(done_id(&line).unwrap()).or_default() += 1;
    }
    a.signal("-KILL").await;
    let (rest, clean) = a.finish().await;
    assert!(!clean, "SIGKILL ends the process abnormally");
    for line in rest {
        *runs.entry(done_id(&line).unwrap()).or_default() += 1;
    }

    let mut b = Worker::start(&server.url(), &envs).await;
    while runs.len() < TASKS as usize {
        let line = b.line().await.expect("worker b alive");
        *runs.entry(done_id(&line).unwrap()).or_default() += 1;
    }
    b.signal("-TERM").await;
    let (rest, clean) = b.finish().await;
    assert!(clean);
    // tasks a finished but could not ack come back one ack wait later; b may
    // still be running some of them when it is told to stop
    assert_eq!(rest.last().map(String::as_str), Some("stopped"));
    for line in &rest[..rest.len() - 1] {
        *runs.entry(done_id(line).unwrap()).or_default() += 1;
    }

    let seen: HashSet<String> = runs.keys().cloned().collect();
    assert_eq!(seen, ids, "every task completed");
    let twice = runs.values().filter(|&&n| n > 1).count();
    assert!(runs.values().all(|&n| n <= 2));
    eprintln!(
        "SIGKILL mid-run: {twice} of {TASKS} tasks ran twice (bound: {CONCURRENCY} in flight)"
    );
    assert!(
        twice <= CONCURRENCY,
        "{twice} tasks ran twice, more than were in flight"
    );
}

#[tokio::test]
async fn a_graceful_stop_mid_run_loses_nothing_and_runs_nothing_twice() {
    const TASKS: u64 = 200;
    let server = NatsServer::start();
    let ids = setup(&server, TASKS).await;
    let envs = [("NATASK_CONCURRENCY", "8"), ("NATASK_WORK_MS", "50")];
    let mut runs: HashMap<String, u32> = HashMap::new();
    let mut a = Worker::start(&server.url(), &envs).await;
    while runs.len() < 40 {
        let line = a.line().await.unwrap();
        *runs.entry(done_id(&line).unwrap()).or_default() += 1;
    }
    a.signal("-TERM").await;
    let (rest, clean) = a.finish().await;
    assert!(clean, "a graceful stop exits cleanly");
    assert_eq!(rest.last().map(String::as_str), Some("stopped"));
    for line in &rest[..rest.len() - 1] {
        *runs.entry(done_id(line).unwrap()).or_default() += 1;
    }
    let mut b = Worker::start(&server.url(), &envs).await;
    while runs.values().sum::<u32>() < TASKS as u32 {
        let line = b.line().await.unwrap();
        *runs.entry(done_id(&line).unwrap()).or_default() += 1;
    }
    b.signal("-TERM").await;
    assert_eq!(b.finish().await, (vec!["stopped".to_owned()], true));
    assert_eq!(runs.keys().cloned().collect::<HashSet<_>>(), ids);
    assert!(runs.values().all(|&n| n == 1), "a task ran twice");
}

#[tokio::test]
async fn a_task_that_crashes_its_worker_every_time_is_dead_lettered_after_its_attempts() {
    let server = NatsServer::start();
    let client = natask_runtime::Client::connect(&server.url())
        .await
        .unwrap();
    let mut dead = client.nats().subscribe("natask.dlq.>").await.unwrap();
    let envs = [("NATASK_QUEUES", "crashes"), ("NATASK_ACK_WAIT_MS", "1000")];
    // the first worker provisions the queue; then the task goes in
    let mut worker = Worker::start(&server.url(), &envs).await;
    let id = natask_runtime::TaskId::new().to_string();
    let mut h = async_nats::HeaderMap::new();
    h.insert(wire::HEADER_TASK, "crash");
    h.insert(wire::HEADER_ID, id.as_str());
    client
        .jetstream()
        .publish_with_headers("natask.q.crashes.crash", h, "null".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let mut attempts = Vec::new();
    let letter = loop {
        tokio::select! {
            line = worker.line() => match line {
                Some(line) => attempts.push(line),
                None => {
                    // the worker died: start the next one, as a supervisor would
                    let (_, clean) = worker.finish().await;
                    assert!(!clean);
                    assert!(attempts.len() <= 3, "crashed more often than its attempts: {attempts:?}");
                    worker = Worker::start(&server.url(), &envs).await;
                }
            },
            letter = dead.next() => break letter.unwrap(),
        }
    };
    assert_eq!(
        attempts,
        (1..=3)
            .map(|k| format!("crashing {id} attempt={k}"))
            .collect::<Vec<_>>(),
        "retries = 2: three attempts, each killed the worker"
    );
    let h = |n: &str| {
        letter
            .headers
            .as_ref()
            .unwrap()
            .get(n)
            .unwrap()
            .as_str()
            .to_owned()
    };
    assert_eq!(h("Natask-Id"), id);
    assert_eq!(h("Natask-Reason"), "exhausted");
    assert_eq!(h("Natask-Attempts"), "3");
    assert!(
        h("Natask-Error")
            .starts_with("delivered 4 times, more than its 3 attempts, without an outcome"),
        "{}",
        h("Natask-Error")
    );
    // the worker that parked it is alive and stops cleanly
    worker.signal("-TERM").await;
    assert_eq!(worker.finish().await, (vec!["stopped".to_owned()], true));
}

#[tokio::test]
async fn max_in_flight_holds_across_worker_processes() {
    const TASKS: u64 = 20;
    let server = NatsServer::start();
    let envs = [
        ("NATASK_QUEUES", "fleet"),
        ("NATASK_FLEET_MAX_IN_FLIGHT", "2"),
        ("NATASK_FLEET_CONCURRENCY", "4"),
        ("NATASK_WORK_MS", "150"),
    ];
    // the first worker creates the queue from the policy; the others attach
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Worker::start(&server.url(), &envs).await);
    }
    let client = natask_runtime::Client::connect(&server.url())
        .await
        .unwrap();
    let consumer = client
        .jetstream()
        .get_stream("NATASK_Q_fleet")
        .await
        .unwrap()
        .consumer_info(wire::CONSUMER)
        .await
        .unwrap();
    assert_eq!(consumer.config.max_ack_pending, 2);
    for n in 0..TASKS {
        let id = natask_runtime::TaskId::new().to_string();
        let mut h = async_nats::HeaderMap::new();
        h.insert(wire::HEADER_TASK, "span");
        h.insert(wire::HEADER_ID, id.as_str());
        h.insert(wire::HEADER_MSG_ID, id.as_str());
        client
            .jetstream()
            .publish_with_headers("natask.q.fleet.span", h, format!("{{\"n\":{n}}}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    // (task, start, end, worker)
    let mut spans: Vec<(u64, u128, u128, usize)> = Vec::new();
    while spans.len() < TASKS as usize {
        let [a, b, c] = &mut workers[..] else {
            unreachable!()
        };
        let (line, worker) = tokio::select! {
            l = a.line() => (l, 0),
            l = b.line() => (l, 1),
            l = c.line() => (l, 2),
        };
        let line = line.expect("worker alive");
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0], "span", "{line}");
        spans.push((
            fields[1].parse().unwrap(),
            fields[2].parse().unwrap(),
            fields[3].parse().unwrap(),
            worker,
        ));
    }
    for mut w in workers {
        w.signal("-TERM").await;
        assert_eq!(w.finish().await, (vec!["stopped".to_owned()], true));
    }

    let mut ran: Vec<u64> = spans.iter().map(|s| s.0).collect();
    ran.sort_unstable();
    assert_eq!(ran, (0..TASKS).collect::<Vec<_>>(), "every task ran once");
    // Most handlers running at once: sweep over starts and ends, an end
    // before a start at the same instant.
    let mut events: Vec<(u128, i32)> = spans
        .iter()
        .flat_map(|&(_, start, end, _)| [(start, 1), (end, -1)])
        .collect();
    events.sort_unstable();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in events {
        now += delta;
        most = most.max(now);
    }
    let mut per_worker = [0; 3];
    for s in &spans {
        per_worker[s.3] += 1;
    }
    eprintln!("max_in_flight = 2 over 3 processes x concurrency 4: at most {most} at once; tasks per worker {per_worker:?}");
    assert!(most <= 2, "{most} handlers ran at once");
    assert_eq!(most, 2, "the limit was reached, so the test shows it holds");
}

/// The registry entries of the running workers, once `pids` are all there.
async fn registered(
    client: &natask_runtime::Client,
    pids: &[String],
) -> Vec<natask_runtime::WorkerInfo> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let workers = client.workers().await.unwrap();
        let mut seen: Vec<String> = workers.iter().map(|w| w.pid.to_string()).collect();
        seen.sort();
        let mut wanted = pids.to_vec();
        wanted.sort();
        if seen == wanted {
            return workers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "registry {seen:?}, wanted {wanted:?}"
        );
        // Written by other processes: read again until it matches.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_killed_worker_drops_out_of_the_registry_after_its_heartbeat_ttl() {
    let server = NatsServer::start();
    setup(&server, 0).await;
    let client = natask_runtime::Client::connect(&server.url())
        .await
        .unwrap();
    let heartbeat = [("NATASK_HEARTBEAT_MS", "1000")];
    let mut killed = Worker::start(&server.url(), &heartbeat).await;
    let mut stays = Worker::start(&server.url(), &heartbeat).await;
    let workers = registered(&client, &[killed.pid(), stays.pid()]).await;
    let id = workers
        .iter()
        .find(|w| w.pid.to_string() == killed.pid())
        .unwrap()
        .id
        .clone();
    let registry = client
        .jetstream()
        .get_key_value(client.names().workers_bucket())
        .await
        .unwrap();
    let mut changes = registry.watch(&id).await.unwrap();

    killed.signal("-KILL").await;
    let at = tokio::time::Instant::now();
    // Its last heartbeat lives three heartbeats (3 s); then the server
    // removes it and leaves a marker the watch sees.
    loop {
        let change = tokio::time::timeout(DEADLINE, changes.next())
            .await
            .expect("the entry expired in time")
            .unwrap()
            .unwrap();
        if change.operation != async_nats::jetstream::kv::Operation::Put {
            break;
        }
    }
    let gone_after = at.elapsed();
    eprintln!("a killed worker left the registry {gone_after:?} after SIGKILL");
    assert!(
        gone_after >= Duration::from_millis(1500),
        "it left before its TTL: {gone_after:?}"
    );
    let left = registered(&client, &[stays.pid()]).await;
    assert_eq!(left.len(), 1);

    stays.signal("-TERM").await;
    assert_eq!(stays.finish().await, (vec!["stopped".to_owned()], true));
    // A graceful stop leaves at once.
    assert!(client.workers().await.unwrap().is_empty());
}
