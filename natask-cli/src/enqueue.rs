//! `natask enqueue`: a task published by name as `docs/wire-format.md`
//! describes it, as a producer in another language would. The payload is
//! checked first against the JSON Schema the live catalog holds for the
//! task (`--no-check` skips that); what the schema cannot tell (your own
//! types) the worker's decode still checks, dead-lettering with reason
//! `decode`.

use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use natask_runtime::{name, wire, CatalogEntry, Client, QueueError, SigningKey, TaskId};

use crate::args::Enqueue;
use crate::output;
use crate::schema;
use crate::Outcome;

/// `natask enqueue TASK --queue Q --json '{..}' [--in d | --at t]`:
/// prints the new task's id on stdout.
pub(crate) async fn run(client: &Client, command: Enqueue) -> Outcome {
    // Read first: a key that cannot be read stops everything.
    let key = match &command.signing_key {
        Some(path) => Some(SigningKey::from_file(path)?),
        None => None,
    };
    name::check(&command.task)
        .map_err(|e| format!("`{}` is not a valid task name: {e}", command.task))?;
    if let Some(queue) = &command.queue {
        name::check(queue).map_err(|e| format!("`{queue}` is not a valid queue name: {e}"))?;
    }
    let payload: serde_json::Value = serde_json::from_str(&command.payload)
        .map_err(|e| format!("the payload is not JSON: {e}"))?;
    let catalogued = catalogued(client, &command).await?;
    let queue = match (&command.queue, &catalogued) {
        (Some(queue), _) => queue.clone(),
        (None, Some(entry)) => entry.queue.clone(),
        (None, None) => {
            return Err(format!(
                "task `{}` is not in the catalog, so its queue is not known; give it with --queue",
                command.task
            )
            .into())
        }
    };
    let command = Enqueue {
        queue: Some(queue),
        ..command
    };
    match &catalogued {
        Some(entry) if !command.no_check => {
            schema::check(&entry.schema, &payload).map_err(|e| {
                format!(
                    "the payload does not match task `{}`'s schema (from the catalog, written by \
                     runtime {}): {e}; nothing was sent (`natask catalog --json` shows the schema)",
                    entry.task, entry.worker
                )
            })?;
        }
        Some(_) => {}
        None if command.no_check => {}
        None => eprintln!(
            "note: task `{}` is not in the catalog (no runtime serving it has started); the \
             payload is sent unchecked",
            command.task
        ),
    }
    let queue = command.queue.as_deref().unwrap_or_default();
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
    match client.queue(queue).info().await {
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
    let target = names.waiting_subject(queue, &command.task, &id.to_string());
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
            names.schedule_subject(queue, &command.task, &id.to_string())
        }
        None => target,
    };
    let body = serde_json::to_vec(&payload)?;
    if let Some(key) = &key {
        key.sign(queue, &mut headers, &body);
    }
    let ack = client
        .jetstream()
        .publish_with_headers(subject.clone(), headers, body.into())
        .await?
        .await
        .map_err(|e| format!("JetStream did not store the task: {e}"))?;

    // The first state, so that `tasks show` and `tasks wait` know the task
    // before a worker takes it (create only: a worker may have written).
    let mut state = serde_json::json!({
        "id": id.to_string(),
        "task": command.task,
        "queue": queue,
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

/// The catalog's entry of the task: the one on `--queue`, or the only
/// one; several queues with a task of that name and no `--queue` is an
/// error.
async fn catalogued(
    client: &Client,
    command: &Enqueue,
) -> Result<Option<CatalogEntry>, Box<dyn std::error::Error + Send + Sync>> {
    let catalog = match client.catalog().await {
        Ok(catalog) => catalog,
        Err(e) if command.no_check && command.queue.is_some() => {
            eprintln!("note: the catalog could not be read ({e})");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let mut found: Vec<CatalogEntry> = catalog
        .into_iter()
        .filter(|e| e.task == command.task)
        .filter(|e| command.queue.as_ref().is_none_or(|q| &e.queue == q))
        .collect();
    if found.len() > 1 {
        let queues: Vec<String> = found.iter().map(|e| format!("`{}`", e.queue)).collect();
        return Err(format!(
            "task `{}` is served on several queues ({}); choose one with --queue",
            command.task,
            queues.join(", ")
        )
        .into());
    }
    Ok(found.pop())
}
