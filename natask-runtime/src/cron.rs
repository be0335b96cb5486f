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

use async_nats::HeaderMap;
use futures_util::TryStreamExt;

use natask_core::registry::TaskEntry;

use crate::client::{kind_headers, Client};
use crate::headers::{
    CONTENT_TYPE, FORMAT, NATS_SCHEDULE, NATS_SCHEDULE_TARGET, NATS_SCHEDULE_TIME_ZONE, TASK,
};

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
        source: crate::EnqueueError,
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
        "nats-server does not know the time zone `{zone}` of cron task `{task}` on queue `{queue}`; \
         write an IANA name from its time-zone database, such as `Europe/Berlin` or `UTC`"
    )]
    TimeZone {
        /// The queue.
        queue: &'static str,
        /// The cron task.
        task: &'static str,
        /// The zone it names.
        zone: &'static str,
    },
    /// JetStream refused or did not answer a read, publish or purge of a
    /// schedule.
    #[error("the schedule of cron task `{task}` on queue `{queue}` could not be read, published or removed")]
    Schedule {
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
/// `worker::task_id`), plus the schedule itself. Enqueue middleware does not
/// run: no producer publishes the ticks.
fn schedule_headers(entry: &TaskEntry, cron: &str, target: &str) -> HeaderMap {
    let mut headers = kind_headers(entry.name);
    headers.insert(NATS_SCHEDULE, cron);
    headers.insert(NATS_SCHEDULE_TARGET, target);
    if let Some(zone) = entry.time_zone {
        headers.insert(NATS_SCHEDULE_TIME_ZONE, zone);
    }
    headers
}

/// Whether a stored schedule already says what `wanted` says. Republishing
/// an unchanged schedule would restart an `@every` interval (measured on
/// nats-server 2.15.1), so that a fleet restarting more often than the
/// interval would never tick.
pub(crate) fn unchanged(stored: Option<&HeaderMap>, wanted: &HeaderMap) -> bool {
    let Some(stored) = stored else { return false };
    [
        NATS_SCHEDULE,
        NATS_SCHEDULE_TARGET,
        NATS_SCHEDULE_TIME_ZONE,
        TASK,
        FORMAT,
        CONTENT_TYPE,
    ]
    .into_iter()
    .all(|name| {
        stored.get(name.clone()).map(|v| v.as_str()) == wanted.get(name).map(|v| v.as_str())
    })
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
    let names = client.names();
    if let Some((first, _)) = crons.first() {
        client
            .ensure_schedules(queue)
            .await
            .map_err(|source| CronError::Unsupported {
                queue,
                task: first.name,
                source,
            })?;
    }
    let error = |task: &'static str| {
        move |e: async_nats::Error| CronError::Schedule {
            queue,
            task,
            source: e,
        }
    };
    let stream = match client
        .jetstream()
        .get_stream(names.queue_stream(queue))
        .await
    {
        Ok(stream) => stream,
        Err(e) => return Err(error("*")(e.into())),
    };
    for (entry, cron) in crons {
        let subject = names.cron_subject(queue, entry.name);
        let target = names.task_subject(queue, entry.name);
        let headers = schedule_headers(entry, cron, &target);
        let stored = stream.direct_get_last_for_subject(subject.as_str()).await;
        if unchanged(stored.as_ref().ok().map(|m| &m.headers), &headers) {
            tracing::debug!(queue, task = entry.name, cron, "cron schedule in place");
            continue;
        }
        let published = match client
            .jetstream()
            .publish_with_headers(subject, headers, BODY.into())
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        if let Err(e) = published {
            let e: async_nats::Error = e.into();
            if let (true, Some(zone)) = (has_error_code(&*e, TIME_ZONE_INVALID), entry.time_zone) {
                return Err(CronError::TimeZone {
                    queue,
                    task: entry.name,
                    zone,
                });
            }
            if is_pattern_invalid(&*e) {
                return Err(CronError::Refused {
                    queue,
                    task: entry.name,
                    cron,
                    server_version: client.nats().server_info().version,
                });
            }
            return Err(error(entry.name)(e));
        }
        tracing::info!(queue, task = entry.name, cron, "cron schedule published");
    }
    let subjects: Vec<(String, usize)> = stream
        .info_with_subjects(names.cron_filter(queue))
        .await
        .map_err(|e| error("*")(e.into()))?
        .try_collect()
        .await
        .map_err(|e| error("*")(e.into()))?;
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
            .map_err(|e| error("*")(e.into()))?;
        tracing::info!(
            queue,
            task,
            "cron schedule removed: this runtime serves the queue but no such cron task"
        );
    }
    Ok(())
}

/// Whether `e` (or an error it wraps) is JetStream's "message schedules
/// pattern is invalid".
pub(crate) fn is_pattern_invalid(e: &(dyn std::error::Error + 'static)) -> bool {
    has_error_code(e, PATTERN_INVALID)
}

/// Whether `e` (or an error it wraps) is JetStream's "message schedules
/// time zone is invalid".
pub(crate) fn is_time_zone_invalid(e: &(dyn std::error::Error + 'static)) -> bool {
    has_error_code(e, TIME_ZONE_INVALID)
}

/// JetStream's "message schedules pattern is invalid".
const PATTERN_INVALID: u64 = 10189;
/// JetStream's "message schedules time zone is invalid".
const TIME_ZONE_INVALID: u64 = 10223;

/// Whether `e` (or an error it wraps) is the JetStream error `code`.
fn has_error_code(e: &(dyn std::error::Error + 'static), code: u64) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<async_nats::jetstream::Error>()
            .is_some_and(|js| js.error_code() == async_nats::jetstream::ErrorCode(code))
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
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
