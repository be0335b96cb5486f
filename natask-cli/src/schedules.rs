//! `natask schedules ls|rm`: the schedule messages in the queues' streams
//! (`<prefix>.s.<queue>.>`, docs/wire-format.md): delayed tasks not yet
//! due, cron tasks (`#[task(cron = ..)]`) and recurring schedules made at
//! run time (`Client::recurring`).

use futures_util::TryStreamExt;
use natask_runtime::{name, wire, Client};
use serde::Serialize;

use crate::args::ScheduleCommand;
use crate::output::{self, or_dash};
use crate::tasks::parse_id;
use crate::Outcome;

/// One schedule in `--json` output.
#[derive(Debug, Serialize)]
pub(crate) struct ScheduleView {
    /// `delayed`, `cron` or `recurring`.
    pub(crate) kind: &'static str,
    pub(crate) queue: String,
    pub(crate) task: String,
    /// The delayed task's id, or the recurring schedule's key; `null` for
    /// a cron task.
    pub(crate) key: Option<String>,
    /// The `Nats-Schedule` header: `@at <time>`, a cron expression or `@every ..`.
    pub(crate) schedule: String,
    pub(crate) time_zone: Option<String>,
    pub(crate) subject: String,
}

/// What a schedule subject's tokens after `<prefix>.s.<queue>.<task>.` say.
fn kind(rest: &str) -> (&'static str, Option<String>) {
    match rest.strip_prefix("cron") {
        Some("") => ("cron", None),
        Some(key) if key.starts_with('.') => ("recurring", Some(key[1..].to_owned())),
        _ => ("delayed", Some(rest.to_owned())),
    }
}

/// Every schedule of `queue` (of every queue when `None`).
pub(crate) async fn list(
    client: &Client,
    queue: Option<String>,
) -> Result<Vec<ScheduleView>, Box<dyn std::error::Error + Send + Sync>> {
    let queues = match queue {
        Some(queue) => vec![queue],
        None => client.queues().await?,
    };
    let names = client.names();
    let mut out = Vec::new();
    for queue in queues {
        name::check(&queue).map_err(|e| format!("`{queue}` is not a valid queue name: {e}"))?;
        let stream = client
            .jetstream()
            .get_stream(names.queue_stream(&queue))
            .await
            .map_err(|e| format!("could not open the stream of queue `{queue}`: {e}"))?;
        let mut subjects: Vec<String> = stream
            .info_with_subjects(names.schedule_filter(&queue))
            .await?
            .map_ok(|(subject, _)| subject)
            .try_collect()
            .await?;
        subjects.sort();
        let start = format!("{}.s.{queue}.", names.prefix());
        for subject in subjects {
            let Some((task, rest)) = subject
                .strip_prefix(&start)
                .and_then(|tail| tail.split_once('.'))
            else {
                continue;
            };
            let message = match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => message,
                // Fired (a delayed task) or removed meanwhile.
                Err(_) => continue,
            };
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
            let (kind, key) = kind(rest);
            out.push(ScheduleView {
                kind,
                queue: queue.clone(),
                task: header(wire::HEADER_TASK).unwrap_or_else(|| task.to_owned()),
                key,
                schedule: header("Nats-Schedule").unwrap_or_default(),
                time_zone: header("Nats-Schedule-Time-Zone"),
                subject: subject.clone(),
            });
        }
    }
    Ok(out)
}

/// `natask schedules ...`.
pub(crate) async fn run(client: &Client, command: ScheduleCommand) -> Outcome {
    match command {
        ScheduleCommand::Ls { queue, json } => {
            let schedules = list(client, queue).await?;
            if json.json {
                output::json(&schedules)?;
            } else if schedules.is_empty() {
                out!("no schedules");
            } else {
                let rows: Vec<Vec<String>> = schedules
                    .into_iter()
                    .map(|s| {
                        vec![
                            s.kind.to_owned(),
                            s.queue,
                            s.task,
                            or_dash(s.key),
                            match s.time_zone {
                                Some(zone) => format!("{} ({zone})", s.schedule),
                                None => s.schedule,
                            },
                        ]
                    })
                    .collect();
                output::table(&["KIND", "QUEUE", "TASK", "KEY OR ID", "SCHEDULE"], &rows)?;
            }
        }
        ScheduleCommand::Rm { subject } => {
            let names = client.names();
            let start = format!("{}.s.", names.prefix());
            let tokens: Vec<&str> = subject
                .strip_prefix(&start)
                .map(|tail| tail.split('.').collect())
                .unwrap_or_default();
            if tokens.len() < 3 || tokens.iter().any(|t| name::check(t).is_err()) {
                return Err(format!(
                    "`{subject}` is not a schedule subject under prefix `{}` (see `natask schedules ls`)",
                    names.prefix()
                )
                .into());
            }
            let queue = tokens[0];
            match kind(&tokens[2..].join(".")) {
                ("delayed", Some(id)) => {
                    // Through `cancel`, so that the task's state says so too.
                    let outcome = client.cancel(parse_id(&id)?).await?;
                    out!("delayed task `{id}` cancelled ({outcome:?})");
                }
                (kind, _) => {
                    let stream = client
                        .jetstream()
                        .get_stream_no_info(names.queue_stream(queue))
                        .await?;
                    let purged = stream.purge().filter(subject.as_str()).await?;
                    if purged.purged == 0 {
                        return Err(format!("no schedule on `{subject}`").into());
                    }
                    out!("{kind} schedule `{subject}` removed");
                    if kind == "cron" {
                        eprintln!(
                            "note: a worker serving the task stores its `#[task(cron)]` schedule again when it starts"
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
