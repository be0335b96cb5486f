//! `natask queues` and `natask queue info|pause|resume|drift`.

use std::time::{SystemTime, UNIX_EPOCH};

use natask_runtime::{Client, QueueInfo, WorkerInfo};
use serde::Serialize;

use crate::args::QueueCommand;
use crate::output::{self, or_dash};
use crate::Outcome;

/// One queue in `--json` output.
#[derive(Debug, Serialize)]
struct QueueView {
    queue: String,
    depth: u64,
    in_flight: u64,
    paused: bool,
    /// RFC 3339; `null` when not paused or paused until resumed.
    paused_until: Option<String>,
    dead_letters: u64,
    waiting_pulls: u64,
    /// RFC 3339; `null` when the queue holds no task.
    oldest_task_at: Option<String>,
    /// Whole seconds; `null` when the queue holds no task.
    oldest_task_age_secs: Option<u64>,
    /// Tasks finished per second by the running workers (their latest
    /// heartbeats, summed); `null` when the registry cannot be read.
    rate_per_sec: Option<f64>,
}

impl From<&QueueInfo> for QueueView {
    fn from(info: &QueueInfo) -> QueueView {
        QueueView {
            queue: info.queue.clone(),
            depth: info.depth,
            in_flight: info.in_flight,
            paused: info.is_paused(),
            paused_until: info
                .paused_until
                .filter(|t| !indefinite(*t))
                .map(output::time),
            dead_letters: info.dead_letters,
            waiting_pulls: info.waiting_pulls,
            oldest_task_at: info.oldest_task_at.map(output::time),
            oldest_task_age_secs: info.oldest_task_at.map(|t| output::age(t).as_secs()),
            rate_per_sec: None,
        }
    }
}

/// A pause without an end reads as 9999-12-31.
fn indefinite(until: SystemTime) -> bool {
    until
        .duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() >= 253_402_214_400)
}

fn paused_cell(info: &QueueInfo) -> String {
    match info.paused_until {
        None => "no".to_owned(),
        Some(until) if indefinite(until) => "yes".to_owned(),
        Some(until) => format!("until {}", output::time(until)),
    }
}

const HEADER: [&str; 7] = [
    "QUEUE",
    "DEPTH",
    "IN FLIGHT",
    "PAUSED",
    "DEAD",
    "OLDEST",
    "RATE/S",
];

fn row(info: &QueueInfo, rate: Option<f64>) -> Vec<String> {
    vec![
        info.queue.clone(),
        info.depth.to_string(),
        info.in_flight.to_string(),
        paused_cell(info),
        info.dead_letters.to_string(),
        or_dash(info.oldest_task_at.map(|t| output::human(output::age(t)))),
        or_dash(rate.map(|r| format!("{r:.1}"))),
    ]
}

/// Tasks finished per second on `queue` by the running workers, from the
/// registry (`None` when it cannot be read).
fn rate(workers: Option<&[WorkerInfo]>, queue: &str) -> Option<f64> {
    workers.map(|workers| {
        workers
            .iter()
            .flat_map(|w| &w.queues)
            .filter(|q| q.queue == queue)
            .map(|q| q.finished_per_sec)
            .sum()
    })
}

/// `natask queues`.
pub(crate) async fn list(client: &Client, json: bool) -> Outcome {
    let mut infos = Vec::new();
    for queue in client.queues().await? {
        infos.push(client.queue(&queue).info().await?);
    }
    let workers = client.workers().await.ok();
    let workers = workers.as_deref();
    if json {
        let views: Vec<QueueView> = infos
            .iter()
            .map(|info| QueueView {
                rate_per_sec: rate(workers, &info.queue),
                ..QueueView::from(info)
            })
            .collect();
        output::json(&views)?;
    } else if infos.is_empty() {
        out!("no queues under prefix `{}`", client.names().prefix());
    } else {
        let rows: Vec<_> = infos
            .iter()
            .map(|info| row(info, rate(workers, &info.queue)))
            .collect();
        output::table(&HEADER, &rows)?;
    }
    Ok(())
}

/// One queue's drift in `--json` output.
#[derive(Debug, Serialize)]
struct DriftView {
    field: &'static str,
    live: String,
    wanted: String,
}

/// `natask queue ...`.
pub(crate) async fn run(client: &Client, command: QueueCommand) -> Outcome {
    match command {
        QueueCommand::Info { name, json } => {
            let info = client.queue(&name).info().await?;
            let workers = client.workers().await.ok();
            let rate = rate(workers.as_deref(), &info.queue);
            if json.json {
                output::json(&QueueView {
                    rate_per_sec: rate,
                    ..QueueView::from(&info)
                })?;
            } else {
                output::table(&HEADER, &[row(&info, rate)])?;
            }
        }
        QueueCommand::Pause { name, duration } => {
            let queue = client.queue(&name);
            match duration {
                Some(d) => {
                    let until = SystemTime::now() + d;
                    queue.pause_until(until).await?;
                    out!("queue `{name}` paused until {}", output::time(until));
                }
                None => {
                    queue.pause().await?;
                    out!("queue `{name}` paused until resumed");
                }
            }
        }
        QueueCommand::Resume { name } => {
            client.queue(&name).resume().await?;
            out!("queue `{name}` resumed");
        }
        QueueCommand::Drift { name, json } => {
            let drift = client.queue(&name).drift().await?;
            if json.json {
                let views: Vec<DriftView> = drift
                    .into_iter()
                    .map(|d| DriftView {
                        field: d.field,
                        live: d.live,
                        wanted: d.wanted,
                    })
                    .collect();
                output::json(&views)?;
            } else if drift.is_empty() {
                out!("queue `{name}` matches its policy");
            } else {
                let rows: Vec<Vec<String>> = drift
                    .into_iter()
                    .map(|d| vec![d.field.to_owned(), d.live, d.wanted])
                    .collect();
                output::table(&["SETTING", "LIVE", "WANTED"], &rows)?;
            }
        }
    }
    Ok(())
}
