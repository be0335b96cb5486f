//! `natask enqueue`: a task published by name as `docs/wire-format.md`
//! describes it, as a producer in another language would. The payload is
//! not checked against the task's type (no catalog yet); a payload the
//! handler cannot decode is dead-lettered with reason `decode`.

use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use natask_runtime::{name, wire, Client, QueueError, TaskId};

use crate::args::Enqueue;
use crate::output;
use crate::Outcome;

/// `natask enqueue TASK --queue Q --json '{..}' [--in d | --at t]`:
/// prints the new task's id on stdout.
pub(crate) async fn run(client: &Client, command: Enqueue) -> Outcome {
    for (what, value) in [("task", &command.task), ("queue", &command.queue)] {
        name::check(value).map_err(|e| format!("`{value}` is not a valid {what} name: {e}"))?;
    }
    let payload: serde_json::Value = serde_json::from_str(&command.payload)
        .map_err(|e| format!("the payload is not JSON: {e}"))?;
    if !(payload.is_object() || payload.is_null()) {
        return Err(
            "the payload must be a JSON object of the task's payload fields \
                    (or `null` for a task without any)"
                .into(),
        );
    }
    let due = match (command.delay, command.at) {
        (Some(delay), _) => Some(SystemTime::now() + delay),
        (None, at) => at,
    };
    // natask's producers and workers create a queue's stream with the
    // policy the application gave; the CLI does not know it, so it only
    // publishes to a stream that exists.
    match client.queue(&command.queue).info().await {
        Ok(_) => {}
        Err(QueueError::NoStream { queue }) => {
            return Err(format!(
                "queue `{queue}` has no stream yet; start a worker serving it (or enqueue one \
                 task from the application), which creates it with the application's policy"
            )
            .into())
        }
        Err(e) => return Err(e.into()),
    }

    let names = client.names();
    let id = TaskId::new();
    let now = SystemTime::now();
    let target = names.task_subject(&command.queue, &command.task);
    let mut headers = HeaderMap::new();
    headers.insert(wire::HEADER_TASK, command.task.as_str());
    headers.insert(wire::HEADER_ID, id.to_string().as_str());
    headers.insert(wire::HEADER_MSG_ID, id.to_string().as_str());
    headers.insert(wire::HEADER_FORMAT, wire::FORMAT_VERSION);
    headers.insert(wire::HEADER_ENQUEUED_AT, millis(now).to_string().as_str());
    headers.insert(wire::HEADER_CONTENT_TYPE, wire::CONTENT_TYPE_JSON);
    let subject = match due {
        Some(due) => {
            headers.insert(wire::HEADER_DUE_AT, millis(due).to_string().as_str());
            headers.insert(
                "Nats-Schedule",
                format!("@at {}", output::time(due)).as_str(),
            );
            headers.insert("Nats-Schedule-Target", target.as_str());
            names.schedule_subject(&command.queue, &command.task, &id.to_string())
        }
        None => target,
    };
    let ack = client
        .jetstream()
        .publish_with_headers(
            subject.clone(),
            headers,
            serde_json::to_vec(&payload)?.into(),
        )
        .await?
        .await
        .map_err(|e| format!("JetStream did not store the task: {e}"))?;

    // The first state, so that `tasks show` and `tasks wait` know the task
    // before a worker takes it (create only: a worker may have written).
    let mut state = serde_json::json!({
        "id": id.to_string(),
        "task": command.task,
        "queue": command.queue,
        "state": if due.is_some() { "delayed" } else { "queued" },
        "attempts": 0,
        "enqueued_at": millis(now),
    });
    match due {
        Some(due) => {
            state["due_at"] = millis(due).into();
            state["schedule"] = subject.into();
        }
        None => state["seq"] = ack.sequence.into(),
    }
    let mut create = HeaderMap::new();
    create.insert("Nats-Expected-Last-Subject-Sequence", "0");
    let recorded = async {
        client
            .jetstream()
            .publish_with_headers(
                format!("$KV.{}.{id}", names.task_bucket()),
                create,
                serde_json::to_vec(&state)?.into(),
            )
            .await?
            .await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    if let Err(e) = recorded.await {
        eprintln!("note: the task was stored, but its state was not recorded ({e})");
    }
    out!("{id}");
    Ok(())
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
