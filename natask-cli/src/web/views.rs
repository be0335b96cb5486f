//! The read-only pages: `/schedules`, `/tasks?id=`, `/workers`, `/catalog`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use super::html::{self, escape, link, url_part};
use super::{App, PageResult};
use crate::output::{self, or_dash};
use crate::tasks::parse_id;

/// `GET /schedules`: delayed tasks not yet due, cron tasks and recurring
/// schedules, as `natask schedules ls` reads them.
pub(crate) async fn schedules(State(app): State<Arc<App>>) -> PageResult {
    let schedules = crate::schedules::list(&app.client, None).await?;
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            let schedule = match &s.time_zone {
                Some(zone) => format!("{} ({zone})", s.schedule),
                None => s.schedule.clone(),
            };
            let key = match (s.kind, &s.key) {
                ("delayed", Some(id)) => link(&format!("/tasks?id={}", url_part(id)), id),
                (_, key) => escape(&or_dash(key.clone())),
            };
            vec![
                escape(s.kind),
                link(&format!("/queues/{}", url_part(&s.queue)), &s.queue),
                escape(&s.task),
                key,
                escape(&schedule),
                format!("<code>{}</code>", escape(&s.subject)),
            ]
        })
        .collect();
    let body = if rows.is_empty() {
        "<p id=\"empty\">no schedules</p>".to_owned()
    } else {
        html::table(
            "schedules",
            &["Kind", "Queue", "Task", "Key or id", "Schedule", "Subject"],
            &rows,
        )
    };
    Ok(Html(html::page(
        "Schedules",
        "/schedules",
        None,
        &body,
        None,
    )))
}

/// `?id=`.
#[derive(Debug, Deserialize)]
pub(crate) struct TaskQuery {
    id: Option<String>,
}

/// `GET /tasks[?id=]`: a lookup form, and the task's state when given.
pub(crate) async fn task(
    State(app): State<Arc<App>>,
    Query(query): Query<TaskQuery>,
) -> PageResult {
    let id = query.id.as_deref().map(str::trim).unwrap_or_default();
    let mut body = format!(
        "<form method=\"get\" action=\"/tasks\"><label>Task id \
         <input type=\"text\" name=\"id\" id=\"task-id\" size=\"40\" value=\"{}\"></label> \
         <button type=\"submit\" id=\"look-up\">Look up</button></form>",
        escape(id)
    );
    if !id.is_empty() {
        match parse_id(id) {
            Err(e) => body.push_str(&format!(
                "<p class=\"error\" id=\"error\">{}</p>",
                escape(&e)
            )),
            Ok(id) => match app.client.task_info(id).await? {
                None => body.push_str(&format!(
                    "<p id=\"missing\">no state is kept for task <code>{}</code>: no such \
                     task, its queue does not track tasks, or its retention passed</p>",
                    escape(&id.to_string())
                )),
                Some(info) => {
                    let time =
                        |t: Option<std::time::SystemTime>| escape(&or_dash(t.map(output::time)));
                    let rows = [
                        ("Id", escape(&info.id.to_string())),
                        ("Task", escape(&info.task)),
                        (
                            "Queue",
                            link(&format!("/queues/{}", url_part(&info.queue)), &info.queue),
                        ),
                        (
                            "State",
                            format!("<span id=\"state\">{}</span>", escape(info.state.as_str())),
                        ),
                        ("Attempts", info.attempts.to_string()),
                        ("Last error", escape(&or_dash(info.last_error.clone()))),
                        ("Enqueued at", time(info.enqueued_at)),
                        ("Due at", time(info.due_at)),
                        ("Started at", time(info.started_at)),
                        ("Finished at", time(info.finished_at)),
                        (
                            "Result",
                            match &info.result {
                                Some(result) => format!(
                                    "<pre>{}</pre>",
                                    escape(
                                        &serde_json::to_string_pretty(result).unwrap_or_default()
                                    )
                                ),
                                None => "-".to_owned(),
                            },
                        ),
                    ];
                    body.push_str(&html::fields("task", &rows));
                }
            },
        }
    }
    Ok(Html(html::page("Tasks", "/tasks", None, &body, None)))
}

/// `GET /workers`: the running runtimes, as the registry says.
pub(crate) async fn workers(State(app): State<Arc<App>>) -> PageResult {
    let workers = app.client.workers().await?;
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let queues: Vec<String> = w
                .queues
                .iter()
                .map(|q| {
                    format!(
                        "{} {}/{} ({})",
                        link(&format!("/queues/{}", url_part(&q.queue)), &q.queue),
                        q.in_flight,
                        q.concurrency,
                        escape(&q.tasks.join(", "))
                    )
                })
                .collect();
            vec![
                format!("<code>{}</code>", escape(&w.id)),
                escape(&w.host),
                w.pid.to_string(),
                escape(&w.version),
                escape(&output::human(output::age(w.started_at))),
                escape(&(output::human(output::age(w.seen_at)) + " ago")),
                queues.join("<br>"),
            ]
        })
        .collect();
    let body = if rows.is_empty() {
        "<p id=\"empty\">no runtime is running (none has written the registry within three \
         heartbeats)</p>"
            .to_owned()
    } else {
        html::table(
            "workers",
            &[
                "Id",
                "Host",
                "Pid",
                "Version",
                "Up",
                "Seen",
                "Queues (in flight/concurrency, tasks)",
            ],
            &rows,
        )
    };
    Ok(Html(html::page("Workers", "/workers", None, &body, None)))
}

/// `GET /catalog`: every catalogued task with its payload's JSON Schema.
pub(crate) async fn catalog(State(app): State<Arc<App>>) -> PageResult {
    let entries = app.client.catalog().await?;
    let mut body = String::new();
    if entries.is_empty() {
        body.push_str(
            "<p id=\"empty\">the catalog is empty: no runtime serving natask tasks has started \
             (within 7 days)</p>",
        );
    }
    for e in &entries {
        let rows = [
            (
                "Queue",
                link(&format!("/queues/{}", url_part(&e.queue)), &e.queue),
            ),
            ("Retries", e.retries.to_string()),
            (
                "Timeout",
                escape(&output::human(Duration::from_millis(e.timeout_ms))),
            ),
            ("Backoff", escape(&e.backoff)),
            ("Cron", escape(&or_dash(e.cron.clone()))),
            ("Time zone", escape(&or_dash(e.time_zone.clone()))),
            (
                "Unique",
                escape(&or_dash(e.unique.as_ref().map(|u| match &u.until {
                    Some(until) => format!("{}s, until {until}", u.ttl_secs),
                    None => format!("{}s", u.ttl_secs),
                }))),
            ),
            ("Defined at", escape(&e.defined_at)),
        ];
        body.push_str(&format!(
            "<h2 id=\"task-{}\">{}</h2>{}<pre class=\"schema\">{}</pre>",
            escape(&url_part(&e.task)),
            escape(&e.task),
            html::fields("entry", &rows),
            escape(&serde_json::to_string_pretty(&e.schema).unwrap_or_default())
        ));
    }
    Ok(Html(html::page("Catalog", "/catalog", None, &body, None)))
}
