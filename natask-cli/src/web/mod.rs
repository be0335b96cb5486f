//! `natask web`: a dashboard of server-rendered pages over the same public
//! API the other commands use. GET shows, POST changes (each POST answers
//! with a 303 back to a page, with a flash message in its query string);
//! `security` says who may do either.

mod dlq;
mod html;
mod queues;
mod security;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use natask_runtime::Client;
use serde::Deserialize;

use crate::args::Web;
use crate::Outcome;

use html::{escape, url_part};
use security::Guard;

/// What every handler reads.
pub(crate) struct App {
    client: Client,
    guard: Guard,
    /// The overview's reload script, if it reloads.
    script: Option<String>,
    /// The `Content-Security-Policy` allowing exactly that script.
    policy: HeaderValue,
    /// The previous look at each queue's stream, for the rates.
    samples: Mutex<HashMap<String, queues::Sample>>,
}

/// Refuses a non-loopback `--listen` without `--allow-remote`.
pub(crate) fn check_listen(web: &Web) -> Result<(), String> {
    if web.listen.ip().is_loopback() || web.allow_remote {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the dashboard on `{}`, which is not a loopback address: anyone \
         who reaches it could pause queues and replay or delete dead letters; listen on \
         127.0.0.1 (and reach it through an SSH tunnel or an authenticating proxy), or pass \
         `--allow-remote`, ideally with `--web-token`",
        web.listen
    ))
}

/// `natask web`: serves until Ctrl-C (or SIGTERM).
pub(crate) async fn run(client: Client, web: Web) -> Outcome {
    check_listen(&web)?;
    let script = (!web.refresh.is_zero()).then(|| {
        format!(
            "setInterval(function(){{if(!document.hidden)location.reload();}},{});",
            web.refresh.as_millis()
        )
    });
    let app = Arc::new(App {
        client,
        guard: Guard::new(web.web_token.as_deref()),
        policy: security::policy(script.as_deref()),
        script,
        samples: Mutex::new(HashMap::new()),
    });
    let listener = tokio::net::TcpListener::bind(web.listen)
        .await
        .map_err(|e| format!("could not listen on `{}`: {e}", web.listen))?;
    let address = listener.local_addr()?;
    // The one line a script (or a test) reads to find the port.
    out!("listening on http://{address}");
    if web.web_token.is_none() && !address.ip().is_loopback() {
        eprintln!("warning: serving on a non-loopback address without --web-token");
    }
    axum::serve(listener, router(app))
        .with_graceful_shutdown(stopped())
        .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(queues::overview))
        .route("/queues/{name}", get(queues::show))
        .route("/queues/{name}/pause", post(queues::pause))
        .route("/queues/{name}/resume", post(queues::resume))
        .route("/dlq", get(dlq::list))
        .route("/dlq/replay-all", post(dlq::replay_all))
        .route("/dlq/purge", post(dlq::purge))
        .route("/dlq/{id}", get(dlq::show))
        .route("/dlq/{id}/replay", post(dlq::replay))
        .route("/dlq/{id}/delete", post(dlq::delete))
        .route("/schedules", get(views::schedules))
        .route("/tasks", get(views::task))
        .route("/workers", get(views::workers))
        .route("/catalog", get(views::catalog))
        .fallback(|| async { PageError::not_found("no such page") })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            security::gate,
        ))
        .with_state(app)
}

/// The flash message a POST's redirect carries.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Flash {
    flash: Option<String>,
}

/// A 303 to `path` (built of [`url_part`]s) with `message` as its flash.
fn back(path: &str, message: &str) -> Redirect {
    let join = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{join}flash={}", url_part(message)))
}

/// A page that could not be made: an error page with the error's causes.
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub(crate) fn not_found(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for PageError {
    fn from(error: E) -> PageError {
        let error = error.into();
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = format!(
            "<p class=\"error\" id=\"error\">{}</p>",
            escape(&self.message)
        );
        let title = if self.status == StatusCode::NOT_FOUND {
            "Not found"
        } else {
            "Error"
        };
        (self.status, Html(html::page(title, "", None, &body, None))).into_response()
    }
}

/// What a page handler returns.
type PageResult = Result<Html<String>, PageError>;
