//! `natask tasks show|wait|cancel`.

use natask_runtime::{Cancelled, Client, TaskId, TaskInfo, TaskState};
use serde::Serialize;

use crate::args::TaskCommand;
use crate::output::{self, or_dash};
use crate::Outcome;

/// One task in `--json` output; times are RFC 3339, absent ones `null`.
#[derive(Debug, Serialize)]
struct TaskView {
    id: String,
    task: String,
    queue: String,
    state: &'static str,
    attempts: u32,
    last_error: Option<String>,
    enqueued_at: Option<String>,
    due_at: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    result: Option<serde_json::Value>,
}

impl From<&TaskInfo> for TaskView {
    fn from(info: &TaskInfo) -> TaskView {
        TaskView {
            id: info.id.to_string(),
            task: info.task.clone(),
            queue: info.queue.clone(),
            state: info.state.as_str(),
            attempts: info.attempts,
            last_error: info.last_error.clone(),
            enqueued_at: info.enqueued_at.map(output::time),
            due_at: info.due_at.map(output::time),
            started_at: info.started_at.map(output::time),
            finished_at: info.finished_at.map(output::time),
            result: info.result.clone(),
        }
    }
}

fn print(info: &TaskInfo, json: bool) -> Outcome {
    let view = TaskView::from(info);
    if json {
        output::json(&view)?;
        return Ok(());
    }
    let rows = [
        ("id", view.id),
        ("task", view.task),
        ("queue", view.queue),
        ("state", view.state.to_owned()),
        ("attempts", view.attempts.to_string()),
        ("last error", or_dash(view.last_error)),
        ("enqueued at", or_dash(view.enqueued_at)),
        ("due at", or_dash(view.due_at)),
        ("started at", or_dash(view.started_at)),
        ("finished at", or_dash(view.finished_at)),
        ("result", or_dash(view.result.map(|r| r.to_string()))),
    ];
    for (name, value) in rows {
        out!("{:<12} {value}", format!("{name}:"));
    }
    Ok(())
}

/// Parses a task id, saying what one looks like.
pub(crate) fn parse_id(id: &str) -> Result<TaskId, String> {
    id.parse().map_err(|_| {
        format!("`{id}` is not a task id (a UUID, such as 0192c4d2-7f4e-7cc0-9d1e-4a6f1c2b3d4e)")
    })
}

/// `natask tasks ...`.
pub(crate) async fn run(client: &Client, command: TaskCommand) -> Outcome {
    match command {
        TaskCommand::Show { id, json } => {
            let id = parse_id(&id)?;
            match client.task_info(id).await? {
                Some(info) => print(&info, json.json),
                None => Err(format!(
                    "no state is kept for task `{id}`: no such task, its queue does not track \
                     tasks, or its retention passed"
                )
                .into()),
            }
        }
        TaskCommand::Wait { id, timeout, json } => {
            let id = parse_id(&id)?;
            let info = client.wait(id, timeout).await?;
            print(&info, json.json)?;
            if info.state == TaskState::Succeeded {
                Ok(())
            } else {
                Err(format!("task `{id}` finished {}", info.state).into())
            }
        }
        TaskCommand::Cancel { id, json } => {
            let id = parse_id(&id)?;
            let (outcome, state, said) = match client.cancel(id).await? {
                Cancelled::Removed => ("removed", None, "removed; it will never run".to_owned()),
                Cancelled::Stopping => (
                    "stopping",
                    None,
                    "running; its worker is stopping it".to_owned(),
                ),
                Cancelled::Finished(state) => (
                    "finished",
                    Some(state.as_str()),
                    format!("already {state}; nothing changed"),
                ),
                _ => (
                    "unknown",
                    None,
                    "unknown; the cancellation is recorded, so it will not run if it arrives"
                        .to_owned(),
                ),
            };
            if json.json {
                output::json(&serde_json::json!({
                    "id": id.to_string(),
                    "outcome": outcome,
                    "state": state,
                }))?;
            } else {
                out!("task `{id}`: {said}");
            }
            Ok(())
        }
    }
}
