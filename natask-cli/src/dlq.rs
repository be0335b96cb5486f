//! `natask dlq ls|show|replay|purge`.

use std::io::{BufRead, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use natask_runtime::{Client, DeadLetter, DeadLetterError};
use serde::Serialize;

use crate::args::{DlqCommand, Select};
use crate::output::{self, or_dash};
use crate::tasks::parse_id;
use crate::Outcome;

/// How many dead letters one read asks for.
const PAGE: usize = 256;

/// One dead letter in `--json` output.
#[derive(Debug, Serialize)]
struct LetterView {
    id: String,
    /// `null` for a message that had no valid task name.
    task: Option<String>,
    queue: String,
    reason: String,
    error: String,
    attempts: u64,
    /// RFC 3339.
    failed_at: Option<String>,
    /// Sequence in the dead-letter stream.
    sequence: u64,
    /// The payload as JSON, or as a string when it is not JSON.
    payload: serde_json::Value,
}

impl From<&DeadLetter> for LetterView {
    fn from(letter: &DeadLetter) -> LetterView {
        LetterView {
            id: letter.id.to_string(),
            task: letter.task.clone(),
            queue: letter.queue.clone(),
            reason: letter.reason.clone(),
            error: letter.error.clone(),
            attempts: letter.attempts,
            failed_at: letter.failed_at.map(output::time),
            sequence: letter.sequence,
            payload: serde_json::from_slice(&letter.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&letter.payload).into_owned())
            }),
        }
    }
}

/// Whether the dead-letter stream exists. natask's clients create it when
/// they first touch dead letters; an operator's look must change nothing.
pub(crate) async fn stream_exists(
    client: &Client,
) -> Result<bool, async_nats::jetstream::context::GetStreamError> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    use async_nats::jetstream::ErrorCode;
    let name = client.names().dead_letter_stream();
    match client.jetstream().get_stream(name).await {
        Ok(_) => Ok(true),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(error)
                if error.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(false)
            }
            _ => Err(e),
        },
    }
}

/// Every dead letter `select` names, oldest first, up to `limit`.
pub(crate) async fn collect(
    client: &Client,
    select: &Select,
    limit: usize,
) -> Result<Vec<DeadLetter>, Box<dyn std::error::Error + Send + Sync>> {
    let mut letters = Vec::new();
    if !stream_exists(client).await? {
        return Ok(letters);
    }
    let dead = client.dead_letters();
    let mut after = 0;
    while letters.len() < limit {
        let page = dead
            .list_matching(
                select.queue.as_deref(),
                select.task.as_deref(),
                after,
                PAGE.min(limit - letters.len()),
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        letters.extend(page);
    }
    Ok(letters)
}

/// Cuts `text` to one line of at most `max` characters.
fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max || line.len() < text.len() {
        line.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
    } else {
        line.to_owned()
    }
}

/// `natask dlq ...`.
pub(crate) async fn run(client: &Client, command: DlqCommand) -> Outcome {
    let dead = client.dead_letters();
    match command {
        DlqCommand::Ls {
            select,
            limit,
            json,
        } => {
            let letters = collect(client, &select, limit).await?;
            if json.json {
                output::json(&letters.iter().map(LetterView::from).collect::<Vec<_>>())?;
            } else if letters.is_empty() {
                out!("no dead letters");
            } else {
                let rows: Vec<Vec<String>> = letters
                    .iter()
                    .map(|l| {
                        vec![
                            l.id.to_string(),
                            l.queue.clone(),
                            or_dash(l.task.clone()),
                            l.reason.clone(),
                            l.attempts.to_string(),
                            or_dash(l.failed_at.map(|t| output::human(output::age(t)) + " ago")),
                            short(&l.error, 60),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "ID", "QUEUE", "TASK", "REASON", "ATTEMPTS", "FAILED", "ERROR",
                    ],
                    &rows,
                )?;
            }
        }
        DlqCommand::Show { id, json } => {
            let id = parse_id(&id)?;
            if !stream_exists(client).await? {
                return Err(DeadLetterError::NotFound { id }.into());
            }
            let letter = dead.get(id).await?;
            if json.json {
                let mut view = serde_json::to_value(LetterView::from(&letter))?;
                let headers: serde_json::Map<String, serde_json::Value> = letter
                    .headers
                    .iter()
                    .map(|(name, values)| {
                        let name: &str = name.as_ref();
                        let values = values.iter().map(|v| v.as_str().into()).collect();
                        (name.to_owned(), serde_json::Value::Array(values))
                    })
                    .collect();
                view["headers"] = serde_json::Value::Object(headers);
                output::json(&view)?;
            } else {
                let view = LetterView::from(&letter);
                out!("id:          {}", view.id);
                out!("queue:       {}", view.queue);
                out!("task:        {}", or_dash(view.task));
                out!("reason:      {}", view.reason);
                out!("attempts:    {}", view.attempts);
                out!("failed at:   {}", or_dash(view.failed_at));
                out!("error:       {}", view.error);
                out!("headers:");
                for (name, value) in sorted_headers(&letter) {
                    out!("  {name}: {value}");
                }
                out!("payload:");
                out!("{}", serde_json::to_string_pretty(&view.payload)?);
            }
        }
        DlqCommand::Replay { id, all, select } => {
            if let Some(id) = id {
                if select.queue.is_some() || select.task.is_some() {
                    return Err("`--queue` and `--task` select letters for `--all`; \
                                replaying one id takes neither"
                        .into());
                }
                let id = parse_id(&id)?;
                if !stream_exists(client).await? {
                    return Err(DeadLetterError::NotFound { id }.into());
                }
                dead.replay(id).await?;
                out!("dead letter `{id}` replayed");
            } else {
                debug_assert!(all, "clap requires an id or --all");
                replay_all(client, &select).await?;
            }
        }
        DlqCommand::Purge { select, yes } => {
            let what = describe(&select);
            if !yes {
                confirm(&what)?;
            }
            let purged = if stream_exists(client).await? {
                dead.purge_matching(select.queue.as_deref(), select.task.as_deref())
                    .await?
            } else {
                0
            };
            out!("{purged} dead letters deleted");
        }
    }
    Ok(())
}

/// Replays every letter `select` names, with a progress bar when stderr is
/// a terminal. A letter that cannot be replayed is reported and skipped;
/// the command then fails.
async fn replay_all(client: &Client, select: &Select) -> Outcome {
    let dead = client.dead_letters();
    let letters = collect(client, select, usize::MAX).await?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(letters.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} replayed {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut replayed = 0;
    let mut failed = 0;
    for letter in &letters {
        match dead.replay_listed(letter).await {
            Ok(()) => replayed += 1,
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("could not replay `{}`: {e}", letter.id));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    out!("{replayed} dead letters replayed");
    if failed > 0 {
        return Err(format!("{failed} dead letters could not be replayed (see above)").into());
    }
    Ok(())
}

fn describe(select: &Select) -> String {
    match (&select.queue, &select.task) {
        (None, None) => "every dead letter of every queue".to_owned(),
        (Some(q), None) => format!("every dead letter of queue `{q}`"),
        (None, Some(t)) => format!("every dead letter of task `{t}`"),
        (Some(q), Some(t)) => format!("every dead letter of task `{t}` in queue `{q}`"),
    }
}

/// Asks on the terminal whether to delete `what`; refuses when there is
/// no terminal to ask on.
fn confirm(what: &str) -> Outcome {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(format!("refusing to delete {what} without confirmation; pass `--yes`").into());
    }
    eprint!("delete {what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err("nothing deleted".into())
    }
}

/// A dead letter's headers as (name, value) pairs, sorted, one pair per
/// value (`dlq show` and the dashboard's letter page).
pub(crate) fn sorted_headers(letter: &DeadLetter) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = letter
        .headers
        .iter()
        .flat_map(|(name, values)| {
            let name: &str = name.as_ref();
            values
                .iter()
                .map(move |v| (name.to_owned(), v.as_str().to_owned()))
        })
        .collect();
    headers.sort();
    headers
}
