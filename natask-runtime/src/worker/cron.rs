//! Cron tasks: repeating JetStream message schedules (`#[task(cron = "...")]`,
//! nats-server 2.14+).
//!
//! A runtime serving a queue keeps one schedule message per cron task of
//! that queue on `<prefix>.s.<queue>.<task>.cron`, with
//! `Nats-Schedule: <expression>` and `Nats-Schedule-Target:
//! <prefix>.q.<queue>.<task>`. On each tick the server stores a copy on the
//! target (every header but `Nats-Schedule*` and `Nats-Msg-Id`, plus
//! `Nats-Scheduler` and `Nats-Schedule-Next`), which the workers' shared
//! consumer hands to exactly one of them: one task per tick for the whole
//! fleet. `docs/scheduling.md` has the details.

use std::collections::HashMap;

use async_nats::jetstream::stream;
use async_nats::HeaderMap;
use futures_util::TryStreamExt;

use natask_core::registry::TaskEntry;

use crate::client::enqueue::provision_error;
use crate::jetstream::headers::{
    kind_headers, NATS_SCHEDULE, NATS_SCHEDULE_TARGET, NATS_SCHEDULE_TIME_ZONE,
};
use crate::jetstream::message_schedules::{self, Put, Refused};
use crate::Client;

/// The body of every tick: a cron task has no payload, and its generated
/// unit struct is serialised as `null`.
const BODY: &[u8] = b"null";

/// The cron schedules of a queue could not be put in place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CronError {
    /// The queue's stream cannot hold schedules (nats-server before 2.12),
    /// or could not be updated to.
    #[error("queue `{queue}` cannot hold the schedule of cron task `{task}`")]
    Unsupported {
        /// The queue.
        queue: &'static str,
        /// The first cron task of the queue.
        task: &'static str,
        /// Why.
        #[source]
        source: Box<crate::EnqueueError>,
    },
    /// The server refused the expression (error 10189, "message schedules
    /// pattern is invalid"): nats-server 2.12 and 2.13 know only `@at`
    /// (measured on 2.12.0), and every version refuses a date that never
    /// occurs, such as `0 0 0 30 2 *`.
    #[error(
        "nats-server {server_version} refuses the schedule `{cron}` of cron task `{task}` on queue `{queue}`; \
         cron and `@every` schedules need nats-server 2.14 or newer, and a date that never occurs is refused by all"
    )]
    Refused {
        /// The queue.
        queue: &'static str,
        /// The cron task.
        task: &'static str,
        /// Its expression.
        cron: &'static str,
        /// The version the server reports.
        server_version: String,
    },
    /// The server does not know the cron task's time zone (error 10223,
    /// "message schedules time zone is invalid").
    #[error(
        "nats-server does not know the time zone `{time_zone}` of cron task `{task}` on queue `{queue}`; \
         write an IANA name from its time-zone database, such as `Europe/Berlin` or `UTC`"
    )]
    TimeZone {
        /// The queue.
        queue: &'static str,
        /// The cron task.
        task: &'static str,
        /// The zone it names.
        time_zone: &'static str,
    },
    /// JetStream refused or did not answer a read, publish or purge of a
    /// schedule.
    #[error("the schedule of cron task `{task}` on queue `{queue}` could not be read, published or removed")]
    JetStream {
        /// The queue.
        queue: &'static str,
        /// The cron task (or `*` while listing the queue's schedules).
        task: &'static str,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

/// The headers of the schedule of cron task `entry`: natask's task headers
/// without `Natask-Id`, `Nats-Msg-Id` and `Natask-Enqueued-At`, which would
/// be the same on every tick (the worker gives each tick its own id, see
/// `worker::message::task_id`), plus the schedule itself. Enqueue
/// middleware does not run: no producer publishes the ticks.
fn schedule_headers(entry: &TaskEntry, cron: &str, target: &str) -> HeaderMap {
    let mut headers = kind_headers(entry.name, entry.version);
    headers.insert(NATS_SCHEDULE, cron);
    headers.insert(NATS_SCHEDULE_TARGET, target);
    if let Some(zone) = entry.time_zone {
        headers.insert(NATS_SCHEDULE_TIME_ZONE, zone);
    }
    headers
}

/// Puts the schedule of every cron task in `tasks` (all of `queue`'s tasks
/// this runtime serves) in place, and removes the cron schedules of `queue`
/// whose task this runtime does not serve as a cron task: a runtime serving
/// a queue owns its cron schedules.
pub(crate) async fn sync(
    client: &Client,
    queue: &'static str,
    tasks: &HashMap<&'static str, TaskEntry>,
) -> Result<(), CronError> {
    let mut crons: Vec<_> = tasks
        .values()
        .filter_map(|e| e.cron.map(|c| (e, c)))
        .collect();
    crons.sort_by_key(|(e, _)| e.name);
    if let Some((first, _)) = crons.first() {
        client
            .provisioner()
            .schedules(queue)
            .await
            .map_err(|source| CronError::Unsupported {
                queue,
                task: first.name,
                source: Box::new(provision_error(queue, source)),
            })?;
    }
    let stream = client
        .jetstream()
        .get_stream(client.names().queue_stream(queue))
        .await
        .map_err(|e| failed(queue, "*", e))?;
    for (entry, cron) in crons {
        put(client, &stream, queue, entry, cron).await?;
    }
    remove_stale(client, &stream, queue, tasks).await
}

/// Puts the schedule of cron task `entry` in place.
async fn put(
    client: &Client,
    stream: &stream::Stream,
    queue: &'static str,
    entry: &TaskEntry,
    cron: &'static str,
) -> Result<(), CronError> {
    let names = client.names();
    let subject = names.cron_subject(queue, entry.name);
    let target = names.task_subject(queue, entry.name);
    let mut headers = schedule_headers(entry, cron, &target);
    if let Some(key) = client.signing_key() {
        key.sign(queue, &mut headers, BODY);
    }
    let put = message_schedules::put(client.jetstream(), stream, subject, headers, BODY.into())
        .await
        .map_err(|refused| match (refused, entry.time_zone) {
            (Refused::TimeZone, Some(time_zone)) => CronError::TimeZone {
                queue,
                task: entry.name,
                time_zone,
            },
            (Refused::Pattern | Refused::TimeZone, _) => CronError::Refused {
                queue,
                task: entry.name,
                cron,
                server_version: client.nats().server_info().version,
            },
            (Refused::JetStream(e), _) => failed(queue, entry.name, e),
        })?;
    match put {
        Put::Unchanged => tracing::debug!(queue, task = entry.name, cron, "cron schedule in place"),
        Put::Published => tracing::info!(queue, task = entry.name, cron, "cron schedule published"),
    }
    Ok(())
}

/// Removes the cron schedules of `queue` whose task is not a cron task in
/// `tasks`.
async fn remove_stale(
    client: &Client,
    stream: &stream::Stream,
    queue: &'static str,
    tasks: &HashMap<&'static str, TaskEntry>,
) -> Result<(), CronError> {
    let names = client.names();
    let subjects: Vec<(String, usize)> = stream
        .info_with_subjects(names.cron_filter(queue))
        .await
        .map_err(|e| failed(queue, "*", e))?
        .try_collect()
        .await
        .map_err(|e| failed(queue, "*", e))?;
    let prefix = format!("{}.s.{queue}.", names.prefix());
    for (subject, _) in subjects {
        let Some(task) = subject
            .strip_prefix(&prefix)
            .and_then(|s| s.strip_suffix(".cron"))
        else {
            continue;
        };
        if tasks.get(task).is_some_and(|e| e.cron.is_some()) {
            continue;
        }
        stream
            .purge()
            .filter(subject.as_str())
            .await
            .map_err(|e| failed(queue, "*", e))?;
        tracing::info!(
            queue,
            task,
            "cron schedule removed: this runtime serves the queue but no such cron task"
        );
    }
    Ok(())
}

fn failed(queue: &'static str, task: &'static str, e: impl Into<async_nats::Error>) -> CronError {
    CronError::JetStream {
        queue,
        task,
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::message_schedules::unchanged;
    use natask_core::wire;

    #[test]
    fn only_a_changed_schedule_is_republished() {
        let entry = TaskEntry {
            name: "digest",
            queue: "q",
            retries: None,
            timeout_ms: None,
            backoff: None,
            cron: Some("@hourly"),
            time_zone: None,
            handler: |_| Box::pin(async { Ok(Vec::new()) }),
            states: &[],
            schema: "{}",
            unique: None,
            version: 1,
            crate_name: "app",
            module_path: "app",
            file: "app.rs",
            line: 1,
        };
        let wanted = schedule_headers(&entry, "@hourly", "natask.q.q.digest");
        let mut stored = wanted.clone();
        stored.insert("Nats-Rollup", "sub");
        assert!(unchanged(Some(&stored), &wanted));
        assert!(!unchanged(None, &wanted));
        let other = schedule_headers(&entry, "@daily", "natask.q.q.digest");
        assert!(!unchanged(Some(&other), &wanted));
        assert!(wanted.get(wire::HEADER_ID).is_none());
        assert!(wanted.get(wire::HEADER_MSG_ID).is_none());
    }
}
