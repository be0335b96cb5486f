//! `/dlq`: dead letters, one letter with its payload, and the POSTs that
//! replay, delete and purge them.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use axum::Form;
use natask_runtime::{DeadLetterError, TaskId};
use serde::Deserialize;

use super::html::{self, escape, link, url_part};
use super::{back, App, Flash, PageError, PageResult};
use crate::args::Select;
use crate::dlq::{collect, stream_exists};
use crate::output::{self, or_dash};
use crate::tasks::parse_id;

/// At most this many letters on one page.
const LIST_LIMIT: usize = 500;

/// `?queue=` (and the flash).
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    queue: Option<String>,
    flash: Option<String>,
}

/// The `queue` field of the replay-all and purge forms (empty: every
/// queue), and the purge's confirmation (`yes` on its second step).
#[derive(Debug, Deserialize)]
pub(crate) struct QueueForm {
    #[serde(default)]
    queue: String,
    #[serde(default)]
    confirm: String,
}

fn select(queue: Option<&str>) -> Select {
    Select {
        queue: queue.filter(|q| !q.is_empty()).map(str::to_owned),
        task: None,
    }
}

fn dlq_path(queue: Option<&str>) -> String {
    match queue.filter(|q| !q.is_empty()) {
        Some(q) => format!("/dlq?queue={}", url_part(q)),
        None => "/dlq".to_owned(),
    }
}

/// `GET /dlq[?queue=]`.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let queue = query.queue.as_deref().filter(|q| !q.is_empty());
    let letters = collect(&app.client, &select(queue), LIST_LIMIT).await?;
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            let id = l.id.to_string();
            vec![
                link(&format!("/dlq/{}", url_part(&id)), &id),
                link(&dlq_path(Some(&l.queue)), &l.queue),
                escape(&or_dash(l.task.clone())),
                escape(&l.reason),
                l.attempts.to_string(),
                escape(&or_dash(l.failed_at.map(output::time))),
                escape(&l.error),
            ]
        })
        .collect();
    let mut body = String::new();
    if let Some(q) = queue {
        body.push_str(&format!(
            "<p>Queue <b>{}</b> · {}</p>",
            escape(q),
            link("/dlq", "every queue")
        ));
    }
    if rows.is_empty() {
        body.push_str("<p id=\"empty\">no dead letters</p>");
    } else {
        body.push_str(&html::table(
            "letters",
            &[
                "Id",
                "Queue",
                "Task",
                "Reason",
                "Attempts",
                "Failed at",
                "Error",
            ],
            &rows,
        ));
        if letters.len() == LIST_LIMIT {
            body.push_str(&format!(
                "<p class=\"muted\">The first {LIST_LIMIT} are shown.</p>"
            ));
        }
        let csrf = &app.guard.csrf;
        let hidden = [("queue", queue.unwrap_or_default())];
        let scope = queue.map_or("of every queue".to_owned(), |q| format!("of {q}"));
        body.push_str(&format!(
            "<p>{}{}</p>",
            html::button(
                csrf,
                "/dlq/replay-all",
                "replay-all",
                &format!("Replay all {scope}"),
                &hidden,
                false
            ),
            html::button(
                csrf,
                "/dlq/purge",
                "purge",
                &format!("Purge all {scope}"),
                &hidden,
                true
            ),
        ));
    }
    Ok(Html(html::page(
        "Dead letters",
        "/dlq",
        query.flash.as_deref(),
        &body,
        None,
    )))
}

async fn letter_id(app: &App, id: &str) -> Result<TaskId, PageError> {
    let id = parse_id(id).map_err(PageError::not_found)?;
    if !stream_exists(&app.client).await? {
        return Err(PageError::not_found(
            DeadLetterError::NotFound { id }.to_string(),
        ));
    }
    Ok(id)
}

/// `GET /dlq/{id}`.
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> PageResult {
    let id = letter_id(&app, &id).await?;
    let letter = match app.client.dead_letters().get(id).await {
        Ok(letter) => letter,
        Err(e @ DeadLetterError::NotFound { .. }) => {
            return Err(PageError::not_found(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    let headers: Vec<Vec<String>> = crate::dlq::sorted_headers(&letter)
        .into_iter()
        .map(|(n, v)| vec![escape(&n), escape(&v)])
        .collect();
    let rows = [
        ("Id", escape(&letter.id.to_string())),
        ("Queue", link(&dlq_path(Some(&letter.queue)), &letter.queue)),
        ("Task", escape(&or_dash(letter.task.clone()))),
        ("Reason", escape(&letter.reason)),
        ("Attempts", letter.attempts.to_string()),
        (
            "Failed at",
            escape(&or_dash(letter.failed_at.map(output::time))),
        ),
        (
            "Error",
            format!("<pre id=\"error-text\">{}</pre>", escape(&letter.error)),
        ),
    ];
    let csrf = &app.guard.csrf;
    let path = format!("/dlq/{}", url_part(&id.to_string()));
    let body = format!(
        "{}<p>{}{}</p><h2>Payload</h2><pre id=\"payload\">{}</pre><h2>Headers</h2>{}",
        html::fields("letter", &rows),
        html::button(
            csrf,
            &format!("{path}/replay"),
            "replay",
            "Replay",
            &[],
            false
        ),
        html::button(
            csrf,
            &format!("{path}/delete"),
            "delete",
            "Delete",
            &[],
            true
        ),
        html::payload(&letter.payload),
        html::table("headers", &["Header", "Value"], &headers),
    );
    Ok(Html(html::page(
        "Dead letter",
        "/dlq",
        flash.flash.as_deref(),
        &body,
        None,
    )))
}

/// `POST /dlq/{id}/replay`: back on its queue, attempts reset.
pub(crate) async fn replay(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Redirect, PageError> {
    let id = letter_id(&app, &id).await?;
    let letter = app.client.dead_letters().get(id).await?;
    app.client.dead_letters().replay(id).await?;
    Ok(back(
        &dlq_path(Some(&letter.queue)),
        &format!("dead letter {id} replayed"),
    ))
}

/// `POST /dlq/{id}/delete`: this letter only (by its sequence in the
/// dead-letter stream).
pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Redirect, PageError> {
    let id = letter_id(&app, &id).await?;
    let client = &app.client;
    let letter = client.dead_letters().get(id).await?;
    client
        .jetstream()
        .get_stream_no_info(client.names().dead_letter_stream())
        .await?
        .delete_message(letter.sequence)
        .await?;
    Ok(back(
        &dlq_path(Some(&letter.queue)),
        &format!("dead letter {id} deleted"),
    ))
}

/// `POST /dlq/replay-all` (`queue` empty: every queue's).
pub(crate) async fn replay_all(
    State(app): State<Arc<App>>,
    Form(form): Form<QueueForm>,
) -> Result<Redirect, PageError> {
    let queue = Some(form.queue.as_str());
    let letters = collect(&app.client, &select(queue), usize::MAX).await?;
    let dead = app.client.dead_letters();
    let (mut replayed, mut failed) = (0, Vec::new());
    for letter in &letters {
        match dead.replay_listed(letter).await {
            Ok(()) => replayed += 1,
            Err(e) => failed.push(format!("{}: {e}", letter.id)),
        }
    }
    let mut message = format!("{replayed} dead letters replayed");
    if !failed.is_empty() {
        message.push_str(&format!(
            "; {} could not be: {}",
            failed.len(),
            failed.join("; ")
        ));
    }
    Ok(back(&dlq_path(queue), &message))
}

/// `POST /dlq/purge` (`queue` empty: every queue's): first a page that
/// says how many letters would go and asks again (a second POST with
/// `confirm=yes`), since a purge cannot be undone; then the purge.
pub(crate) async fn purge(
    State(app): State<Arc<App>>,
    Form(form): Form<QueueForm>,
) -> Result<axum::response::Response, PageError> {
    use axum::response::IntoResponse;
    let queue = Some(form.queue.as_str()).filter(|q| !q.is_empty());
    if form.confirm != "yes" {
        let count = collect(&app.client, &select(queue), usize::MAX)
            .await?
            .len();
        let scope = queue.map_or("of every queue".to_owned(), |q| {
            format!("of queue {}", escape(q))
        });
        let hidden = [("queue", queue.unwrap_or_default()), ("confirm", "yes")];
        let body = format!(
            "<h1>Purge dead letters</h1>\
             <p id=\"question\">Delete the {count} dead letters {scope}? They cannot be replayed afterwards.</p>\
             <p>{} {}</p>",
            html::button(
                &app.guard.csrf,
                "/dlq/purge",
                "confirm-purge",
                &format!("Delete {count} dead letters"),
                &hidden,
                true
            ),
            link(&dlq_path(queue), "Cancel"),
        );
        let page = html::page("Purge dead letters", "/dlq", None, &body, None);
        return Ok(Html(page).into_response());
    }
    let purged = if stream_exists(&app.client).await? {
        app.client
            .dead_letters()
            .purge_matching(queue, None)
            .await?
    } else {
        0
    };
    Ok(back(&dlq_path(queue), &format!("{purged} dead letters deleted")).into_response())
}
