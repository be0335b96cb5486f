//! `/`: every queue; `/queues/{name}`: one queue, paused and resumed by
//! POST.
//!
//! The rates come from the queue stream's counters between two looks: the
//! last sequence grows by one per stored task (enqueued/s), and what it grew
//! by less what the stream still holds more left the stream (acked, ended
//! or dead-lettered: done/s). One stream-info request per queue per look;
//! the first look of a process has no rate.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use natask_runtime::{Client, QueueError, QueueInfo};

use super::html::{self, escape, link, url_part};
use super::{back, App, Flash, PageError, PageResult};
use crate::output;

/// One look at a queue's stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    at: Instant,
    last_sequence: u64,
    messages: u64,
    /// Enqueued/s and done/s against the look before this one.
    rates: Option<(f64, f64)>,
}

/// The rates against the previous look, keeping that look unless a second
/// has passed (so that pages loaded close together do not make noise).
fn rates(app: &App, queue: &str, last_sequence: u64, messages: u64) -> Option<(f64, f64)> {
    let mut samples = app.samples.lock().unwrap_or_else(|e| e.into_inner());
    let before = samples.get(queue).copied();
    let sample = next(before, Instant::now(), last_sequence, messages);
    samples.insert(queue.to_owned(), sample);
    sample.rates
}

/// The look to keep after one at `now` that read `last_sequence` and
/// `messages`.
fn next(before: Option<Sample>, now: Instant, last_sequence: u64, messages: u64) -> Sample {
    let fresh = |rates| Sample {
        at: now,
        last_sequence,
        messages,
        rates,
    };
    let Some(before) = before else {
        return fresh(None);
    };
    let secs = now.duration_since(before.at).as_secs_f64();
    if secs < 1.0 {
        return before;
    }
    let stored = last_sequence.saturating_sub(before.last_sequence) as f64;
    let left = stored - (messages as f64 - before.messages as f64);
    fresh(Some((stored / secs, left.max(0.0) / secs)))
}

async fn sampled_rates(app: &App, queue: &str) -> Option<(f64, f64)> {
    let client = &app.client;
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .ok()?;
    let state = &stream.cached_info().state;
    rates(app, queue, state.last_sequence, state.messages)
}

fn rate(r: f64) -> String {
    format!("{r:.1}")
}

fn paused(info: &QueueInfo) -> String {
    match info.paused_until {
        None => "no".to_owned(),
        Some(until)
            if until
                .duration_since(std::time::UNIX_EPOCH)
                .is_ok_and(|d| d.as_secs() >= 253_402_214_400) =>
        {
            "yes".to_owned()
        }
        Some(until) => format!("until {}", output::time(until)),
    }
}

fn oldest(info: &QueueInfo) -> String {
    output::or_dash(info.oldest_task_at.map(|t| output::human(output::age(t))))
}

/// `GET /`.
pub(crate) async fn overview(
    State(app): State<Arc<App>>,
    Query(flash): Query<Flash>,
) -> PageResult {
    let client: &Client = &app.client;
    let mut rows = Vec::new();
    for queue in client.queues().await? {
        let info = client.queue(&queue).info().await?;
        let rates = sampled_rates(&app, &queue).await;
        let q = url_part(&queue);
        rows.push(vec![
            link(&format!("/queues/{q}"), &queue),
            info.depth.to_string(),
            info.in_flight.to_string(),
            escape(&paused(&info)),
            link(&format!("/dlq?queue={q}"), &info.dead_letters.to_string()),
            escape(&oldest(&info)),
            rates.map_or("-".to_owned(), |r| rate(r.0)),
            rates.map_or("-".to_owned(), |r| rate(r.1)),
        ]);
    }
    let body = if rows.is_empty() {
        format!(
            "<p id=\"empty\">no queues under prefix <code>{}</code></p>",
            escape(client.names().prefix())
        )
    } else {
        html::table(
            "queues",
            &[
                "Queue",
                "Depth",
                "In flight",
                "Paused",
                "Dead letters",
                "Oldest task",
                "Enqueued/s",
                "Done/s",
            ],
            &rows,
        ) + "<p class=\"muted\">Rates compare this look at each queue with the previous one \
             (at least a second apart); the first look has none.</p>"
    };
    Ok(Html(html::page(
        "Queues",
        "/",
        flash.flash.as_deref(),
        &body,
        app.script.as_deref(),
    )))
}

/// `GET /queues/{name}`.
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(flash): Query<Flash>,
) -> PageResult {
    let info = match app.client.queue(&name).info().await {
        Ok(info) => info,
        Err(e @ QueueError::NoStream { .. }) => return Err(PageError::not_found(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let q = url_part(&name);
    let rows = [
        ("Queue", escape(&info.queue)),
        ("Depth", info.depth.to_string()),
        ("In flight", info.in_flight.to_string()),
        (
            "Paused",
            format!("<span id=\"paused\">{}</span>", escape(&paused(&info))),
        ),
        (
            "Dead letters",
            link(&format!("/dlq?queue={q}"), &info.dead_letters.to_string()),
        ),
        ("Waiting pulls", info.waiting_pulls.to_string()),
        ("Oldest task", escape(&oldest(&info))),
    ];
    let csrf = &app.guard.csrf;
    let action = if info.is_paused() {
        html::button(
            csrf,
            &format!("/queues/{q}/resume"),
            "resume",
            "Resume",
            &[],
            false,
        )
    } else {
        html::button(
            csrf,
            &format!("/queues/{q}/pause"),
            "pause",
            "Pause",
            &[],
            true,
        )
    };
    let body = format!(
        "{}<p>{action}</p><p class=\"muted\">A pause holds the queue for every worker \
         (nats-server 2.11+); tasks enqueued meanwhile wait.</p>",
        html::fields("queue", &rows)
    );
    Ok(Html(html::page(
        &format!("Queue {name}"),
        "/",
        flash.flash.as_deref(),
        &body,
        None,
    )))
}

/// `POST /queues/{name}/pause`.
pub(crate) async fn pause(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Redirect, PageError> {
    app.client.queue(&name).pause().await?;
    Ok(back(
        &format!("/queues/{}", url_part(&name)),
        &format!("queue {name} paused until resumed"),
    ))
}

/// `POST /queues/{name}/resume`.
pub(crate) async fn resume(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Redirect, PageError> {
    app.client.queue(&name).resume().await?;
    Ok(back(
        &format!("/queues/{}", url_part(&name)),
        &format!("queue {name} resumed"),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_come_from_the_change_between_looks_a_second_apart() {
        let t0 = Instant::now();
        let first = next(None, t0, 100, 10);
        assert_eq!(first.rates, None, "no rate on the first look");
        let close = next(Some(first), t0 + Duration::from_millis(300), 150, 10);
        assert_eq!(
            close.at, t0,
            "a look within a second keeps the previous one"
        );
        // 2 s later: 40 stored, the stream holds 10 more, so 30 left.
        let later = next(Some(first), t0 + Duration::from_secs(2), 140, 20);
        assert_eq!(later.rates, Some((20.0, 15.0)));
        // A purge shrinks the stream: never a negative rate.
        let purged = next(Some(later), t0 + Duration::from_secs(4), 140, 200);
        assert_eq!(purged.rates, Some((0.0, 0.0)));
    }
}
