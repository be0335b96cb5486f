//! `natask workers` (the worker registry) and `natask catalog` (the tasks
//! the runtimes serve, with their payload schemas).

use natask_runtime::{CatalogEntry, Client, WorkerInfo};
use serde::Serialize;

use crate::output::{self, or_dash};
use crate::Outcome;

/// One running runtime in `--json` output.
#[derive(Debug, Serialize)]
struct WorkerView<'a> {
    id: &'a str,
    host: &'a str,
    pid: u32,
    version: &'a str,
    /// RFC 3339.
    started_at: String,
    /// RFC 3339: its latest heartbeat.
    seen_at: String,
    heartbeat_ms: u64,
    queues: Vec<QueueView<'a>>,
}

#[derive(Debug, Serialize)]
struct QueueView<'a> {
    queue: &'a str,
    concurrency: usize,
    in_flight: usize,
    finished: u64,
    finished_per_sec: f64,
    tasks: &'a [String],
}

impl<'a> From<&'a WorkerInfo> for WorkerView<'a> {
    fn from(w: &'a WorkerInfo) -> WorkerView<'a> {
        WorkerView {
            id: &w.id,
            host: &w.host,
            pid: w.pid,
            version: &w.version,
            started_at: output::time(w.started_at),
            seen_at: output::time(w.seen_at),
            heartbeat_ms: w.heartbeat_ms,
            queues: w
                .queues
                .iter()
                .map(|q| QueueView {
                    queue: &q.queue,
                    concurrency: q.concurrency,
                    in_flight: q.in_flight,
                    finished: q.finished,
                    finished_per_sec: q.finished_per_sec,
                    tasks: &q.tasks,
                })
                .collect(),
        }
    }
}

/// `natask workers [--json]`: every running runtime, oldest first.
pub(crate) async fn workers(client: &Client, json: bool) -> Outcome {
    let workers = client.workers().await?;
    if json {
        let views: Vec<WorkerView<'_>> = workers.iter().map(WorkerView::from).collect();
        return output::json(&views);
    }
    if workers.is_empty() {
        out!("no runtime is running (none has written the registry within three heartbeats)");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let queues: Vec<String> = w
                .queues
                .iter()
                .map(|q| format!("{} {}/{}", q.queue, q.in_flight, q.concurrency))
                .collect();
            vec![
                short(&w.id),
                w.host.clone(),
                w.pid.to_string(),
                w.version.clone(),
                output::human(output::age(w.started_at)),
                output::human(output::age(w.seen_at)),
                queues.join(", "),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "HOST",
            "PID",
            "VERSION",
            "UP",
            "SEEN",
            "QUEUES (IN FLIGHT/CONCURRENCY)",
        ],
        &rows,
    )?;
    Ok(())
}

/// `natask catalog [--queue Q] [--json]`: every catalogued task.
pub(crate) async fn catalog(client: &Client, queue: Option<&str>, json: bool) -> Outcome {
    let entries: Vec<CatalogEntry> = client
        .catalog()
        .await?
        .into_iter()
        .filter(|e| queue.is_none_or(|q| e.queue == q))
        .collect();
    if json {
        return output::json(&entries);
    }
    if entries.is_empty() {
        out!("the catalog is empty: no runtime serving natask tasks has started (within 7 days)");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.queue.clone(),
                e.task.clone(),
                e.retries.to_string(),
                output::human(std::time::Duration::from_millis(e.timeout_ms)),
                e.backoff.clone(),
                or_dash(e.cron.clone()),
                or_dash(e.unique.as_ref().map(|u| match &u.until {
                    Some(until) => format!("{}s, until {until}", u.ttl_secs),
                    None => format!("{}s", u.ttl_secs),
                })),
                payload(&e.schema),
            ]
        })
        .collect();
    output::table(
        &[
            "QUEUE", "TASK", "RETRIES", "TIMEOUT", "BACKOFF", "CRON", "UNIQUE", "PAYLOAD",
        ],
        &rows,
    )?;
    Ok(())
}

/// The payload's fields as `name: type`, `?` after an optional one.
fn payload(schema: &serde_json::Value) -> String {
    let Some(properties) = schema["properties"].as_object() else {
        return "-".to_owned();
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let fields: Vec<String> = properties
        .iter()
        .map(|(name, field)| {
            let optional = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            format!("{name}{optional}: {}", kind(field))
        })
        .collect();
    fields.join(", ")
}

/// A field's schema in a word.
fn kind(field: &serde_json::Value) -> String {
    if let Some(rust) = field["x-rust-type"].as_str() {
        return rust.to_owned();
    }
    if let Some(forms) = field["anyOf"].as_array() {
        let forms: Vec<String> = forms
            .iter()
            .filter(|f| f["type"] != "null")
            .map(kind)
            .collect();
        return forms.join(" | ");
    }
    match field["type"].as_str() {
        Some("array") => format!("[{}]", kind(&field["items"])),
        Some(t) => t.to_owned(),
        None => "any".to_owned(),
    }
}

/// The last 8 characters of an id (its random part), enough to tell
/// runtimes apart.
fn short(id: &str) -> String {
    id.chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}
