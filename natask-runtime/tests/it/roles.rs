//! The least-privilege roles of `docs/security.md`, against a real server
//! started with exactly the permission blocks that file shows (its queues
//! `emails` and `audit` renamed to this binary's `it_` convention): each role
//! (producer, worker, operator) does its job, and is refused one step
//! beyond with an error that says so and names the subject. Once as
//! documented (clients create what they use), once with the `# create`
//! lines removed after an admin created everything
//! (`Provisioning::NoCreate`).

use std::time::Duration;

use natask_runtime::{
    task, Cancelled, Client, Provisioning, QueuePolicy, TaskError, TaskId, TaskState,
};
use natask_testing::NatsServer;

use crate::{builder, drained, whole, Running};

#[task(queue = "it_roles_emails", retries = 0)]
async fn role_job(n: u32, fail: bool) -> Result<(), TaskError> {
    let _ = n;
    if fail {
        return Err(TaskError::fatal("asked to fail"));
    }
    Ok(())
}

#[task(queue = "it_roles_audit")]
async fn role_audit(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

const SECURITY_MD: &str = include_str!("../../../docs/security.md");

/// The permission block of `role` in `docs/security.md`: the fenced block
/// after `<!-- role: ROLE -->`; without its `# create` lines if `no_create`.
fn documented(role: &str, no_create: bool) -> String {
    let marker = format!("<!-- role: {role} -->\n```text\n");
    let start = SECURITY_MD
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/security.md has no block for role `{role}`"))
        + marker.len();
    let block = &SECURITY_MD[start..];
    let block = &block[..block.find("```").expect("the block ends")];
    // The doc's queues are `emails` and `audit`; this binary's test queues
    // all start with `it_`.
    block
        .lines()
        .filter(|line| !(no_create && line.trim_end().ends_with("# create")))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("emails", "it_roles_emails")
        .replace("audit", "it_roles_audit")
}

/// A server whose users are the documented roles and an admin.
fn server(no_create: bool) -> NatsServer {
    NatsServer::start_with_config(&format!(
        "PRODUCER_PASSWORD: \"producer\"\nWORKER_PASSWORD: \"worker\"\n\
         OPERATOR_PASSWORD: \"operator\"\n\
         authorization {{ users = [\n{}\n{}\n{}\n{{ user: admin, password: admin }}\n] }}\n",
        documented("producer", no_create),
        documented("worker", no_create),
        documented("operator", no_create),
    ))
}

async fn connect_as(server: &NatsServer, user: &str, provisioning: Provisioning) -> Client {
    let url = format!("nats://{user}:{user}@127.0.0.1:{}", server.port());
    Client::connect(&url)
        .await
        .expect("connect")
        .with_timeout(Duration::from_secs(2))
        .with_provisioning(provisioning)
        .with_queue(QueuePolicy::new("it_roles_audit").tracking(false))
        .expect("a valid policy")
}

/// Fails unless `err` says permission denied for a publish to `subject`.
fn denied(err: &dyn std::error::Error, subject: &str) {
    let text = whole(err);
    assert!(
        text.contains(&format!(
            "permission denied: the NATS user may not publish to `{subject}`"
        )),
        "{text}"
    );
}

/// Each role's job, then one step beyond it.
async fn jobs(server: &NatsServer, provisioning: Provisioning) {
    let admin = connect_as(server, "admin", Provisioning::Create).await;
    let producer = connect_as(server, "producer", provisioning).await;
    let worker = connect_as(server, "worker", provisioning).await;
    let operator = connect_as(server, "operator", provisioning).await;

    // Producer: tracked, delayed and untracked tasks; reads a state back.
    let ok = RoleJob { n: 1, fail: false }
        .enqueue(&producer)
        .await
        .expect("enqueue")
        .id;
    let bad = RoleJob { n: 2, fail: true }
        .enqueue(&producer)
        .await
        .expect("enqueue")
        .id;
    let later = RoleJob { n: 3, fail: false }
        .enqueue_in(&producer, Duration::from_secs(3600))
        .await
        .expect("delayed enqueue")
        .id;
    RoleAudit { n: 4 }
        .enqueue(&producer)
        .await
        .expect("untracked enqueue");
    let info = producer.task_info(later).await.expect("task_info");
    assert_eq!(info.map(|i| i.state), Some(TaskState::Delayed));
    // A waiting task is read from its queue's stream.
    let info = producer.task_info(ok).await.expect("task_info");
    assert_eq!(info.map(|i| i.state), Some(TaskState::Queued));
    let again = producer
        .enqueue_with(
            &RoleJob { n: 1, fail: false },
            natask_runtime::EnqueueOptions::new().id(ok),
        )
        .await
        .expect("enqueue with a chosen id");
    assert!(!again.created, "the id names a waiting task");

    // Worker: runs them all, dead-letters the failing one.
    let running = Running::start(builder(&worker, &["it_roles_emails", "it_roles_audit"])).await;
    let done = producer
        .wait(ok, Duration::from_secs(20))
        .await
        .expect("wait");
    assert_eq!(done.state, TaskState::Succeeded);
    let dead = producer
        .wait(bad, Duration::from_secs(20))
        .await
        .expect("wait");
    assert_eq!(dead.state, TaskState::Dead);
    drained(&admin, "it_roles_audit").await;

    // Operator: pause and resume, counts, dead letters, states, cancels.
    let queue = operator.queue("it_roles_emails");
    queue.pause().await.expect("pause");
    let info = queue.info().await.expect("queue info");
    assert!(info.paused_until.is_some(), "{info:?}");
    queue.resume().await.expect("resume");
    assert!(matches!(
        operator.cancel(later).await.expect("cancel"),
        Cancelled::Removed
    ));
    assert!(matches!(
        operator.cancel(TaskId::new()).await.expect("cancel"),
        Cancelled::Unknown
    ));
    let state = operator
        .task_info(ok)
        .await
        .expect("task_info")
        .map(|i| i.state);
    assert_eq!(state, Some(TaskState::Succeeded));
    // The worker, from the registry, and what it serves, from the catalog.
    let workers = operator.workers().await.expect("workers");
    assert_eq!(workers.len(), 1, "{workers:?}");
    let catalog = operator.catalog().await.expect("catalog");
    assert!(catalog.iter().any(|e| e.task == "role_job"), "{catalog:?}");
    let letters = operator.dead_letters();
    let listed = letters
        .list("it_roles_emails", 0, 10)
        .await
        .expect("list dead letters");
    assert_eq!(listed.iter().map(|l| l.id).collect::<Vec<_>>(), [bad]);
    letters.replay(bad).await.expect("replay");
    assert!(letters
        .list("it_roles_emails", 0, 10)
        .await
        .expect("list")
        .is_empty());
    // The worker takes the replayed task: nothing is left in the queue.
    drained(&admin, "it_roles_emails").await;
    // The replayed task failed again; whether its dead letter is stored
    // again is not this test's business (its `Nats-Msg-Id` is the first
    // one's, inside the duplicate window), so count what is there.
    let replayed = letters
        .list("it_roles_emails", 0, 10)
        .await
        .expect("list")
        .len() as u64;
    let worse = RoleJob { n: 6, fail: true }
        .enqueue(&producer)
        .await
        .expect("enqueue")
        .id;
    let dead = producer
        .wait(worse, Duration::from_secs(20))
        .await
        .expect("wait");
    assert_eq!(dead.state, TaskState::Dead);
    assert_eq!(
        letters.purge("it_roles_emails").await.expect("purge"),
        replayed + 1
    );

    // One step beyond each role.
    let err = producer
        .dead_letters()
        .purge("it_roles_emails")
        .await
        .unwrap_err();
    denied(&err, "$JS.API.STREAM.INFO.NATASK_DLQ");
    let Err(err) = builder(&producer, &["it_roles_emails"]).build().await else {
        panic!("a producer cannot serve a queue");
    };
    denied(
        &err,
        "$JS.API.CONSUMER.INFO.NATASK_Q_it_roles_emails.workers",
    );
    let refused = RoleJob { n: 5, fail: false };
    let id = TaskId::new();
    let err = worker
        .enqueue_with(&refused, natask_runtime::EnqueueOptions::new().id(id))
        .await
        .unwrap_err();
    denied(&err, &format!("natask.q.it_roles_emails.role_job.{id}"));
    let err = worker.queue("it_roles_emails").pause().await.unwrap_err();
    denied(
        &err,
        "$JS.API.CONSUMER.PAUSE.NATASK_Q_it_roles_emails.workers",
    );
    let err = worker.task_info(ok).await.unwrap_err();
    denied(
        &err,
        &format!("$JS.API.DIRECT.GET.KV_NATASK_TASKS.$KV.NATASK_TASKS.{ok}"),
    );
    let err = worker
        .dead_letters()
        .purge("it_roles_emails")
        .await
        .unwrap_err();
    denied(&err, "$JS.API.STREAM.PURGE.NATASK_DLQ");
    let Err(err) = builder(&operator, &["it_roles_emails"]).build().await else {
        panic!("an operator cannot serve a queue");
    };
    denied(&err, "$JS.API.STREAM.INFO.KV_NATASK_HANDBACKS");

    running.stop().await;
}

#[tokio::test]
async fn each_role_does_its_job_and_no_more() {
    let server = server(false);
    jobs(&server, Provisioning::Create).await;
}

#[tokio::test]
async fn without_create_permissions_an_admin_provisions() {
    let server = server(true);
    let admin = connect_as(&server, "admin", Provisioning::Create).await;
    // Everything the roles use, created once by the admin.
    builder(&admin, &["it_roles_emails", "it_roles_audit"])
        .build()
        .await
        .expect("the admin provisions the queues");
    let id = RoleJob { n: 0, fail: false }
        .enqueue_in(&admin, Duration::from_secs(3600))
        .await
        .expect("the admin creates the task-state bucket")
        .id;
    assert!(matches!(
        admin.cancel(id).await.expect("cancel"),
        Cancelled::Removed
    ));
    jobs(&server, Provisioning::NoCreate).await;
}
