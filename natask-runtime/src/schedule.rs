//! Delayed tasks: JetStream message schedules (`Nats-Schedule: @at`, nats-server 2.12+).
//!
//! A delayed task is published to its own schedule subject
//! `<prefix>.s.<queue>.<task>.<id>` in the queue's stream, with the task's
//! body and headers plus `Nats-Schedule: @at <due time>` and
//! `Nats-Schedule-Target: <prefix>.q.<queue>.<task>`. When it is due, the
//! server stores a copy on the target subject (dropping the schedule
//! headers and `Nats-Msg-Id`, adding `Nats-Scheduler` and
//! `Nats-Schedule-Next`) and deletes the schedule. Nothing in natask holds
//! the task in the meantime. `docs/scheduling.md` has the details.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use tracing::Instrument;

use natask_core::{Task, TaskId};

use crate::client::{unix_millis, Client, EnqueueError};
use crate::headers::{DUE_AT, NATS_SCHEDULE, NATS_SCHEDULE_TARGET};
use crate::tracking::{TaskInfo, TaskState};
use crate::unique::{EnqueueOptions, Enqueued, Lock};

/// A scheduled task could not be cancelled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    /// JetStream did not answer the purge of the task's schedule (in time).
    /// The task may or may not still be scheduled.
    #[error("the schedule of task `{task}` {id} on queue `{queue}` could not be removed")]
    Purge {
        /// The task's name.
        task: &'static str,
        /// The queue.
        queue: &'static str,
        /// The task's id.
        id: TaskId,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

impl Client {
    /// Enqueues `task` to run once `delay` has passed; returns its id once
    /// JetStream has stored the schedule.
    ///
    /// The task waits on the server as a message schedule (nats-server 2.12
    /// or newer; older servers get [`EnqueueError::SchedulesUnsupported`]),
    /// not in any worker or producer, so it survives restarts of both. It
    /// fires within a few milliseconds of its due time while the server
    /// runs; a task that fell due while the server was down fires as soon
    /// as it is back. A zero delay enqueues at once, exactly like
    /// [`enqueue`](Self::enqueue).
    ///
    /// The generated `SendEmail { .. }.enqueue_in(&client, delay)` calls this.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # #[natask_runtime::task(queue = "emails")]
    /// # async fn remind(to: String) {}
    /// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let id = client.enqueue_in(&Remind::new("ada@example.com".into()), Duration::from_secs(3600)).await?.id;
    /// // changed our mind:
    /// client.cancel_scheduled::<Remind>(id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_in<T: Task>(
        &self,
        task: &T,
        delay: Duration,
    ) -> Result<Enqueued, EnqueueError> {
        if delay.is_zero() {
            return self.enqueue(task).await;
        }
        match SystemTime::now().checked_add(delay) {
            Some(due) => self.enqueue_at(task, due).await,
            None => Err(EnqueueError::TooFarAhead { task: T::NAME }),
        }
    }

    /// Enqueues `task` to run at `due`; returns its id once JetStream has
    /// stored the schedule.
    ///
    /// Like [`enqueue_in`](Self::enqueue_in). A `due` time that is not in
    /// the future (by this machine's clock) enqueues at once, exactly like
    /// [`enqueue`](Self::enqueue).
    ///
    /// The generated `SendEmail { .. }.enqueue_at(&client, due)` calls this.
    pub async fn enqueue_at<T: Task>(
        &self,
        task: &T,
        due: SystemTime,
    ) -> Result<Enqueued, EnqueueError> {
        if due <= SystemTime::now() {
            return self.enqueue(task).await;
        }
        let Some(at) = rfc3339(due) else {
            return Err(EnqueueError::TooFarAhead { task: T::NAME });
        };
        let span = tracing::info_span!("enqueue", task = T::NAME, queue = T::QUEUE, due = %at);
        self.bounded::<T, _>(self.schedule_at(task, due, at).instrument(span))
            .await
    }

    async fn schedule_at<T: Task>(
        &self,
        task: &T,
        due: SystemTime,
        at: String,
    ) -> Result<Enqueued, EnqueueError> {
        self.ensure_schedules(T::QUEUE).await?;
        let target = self.subject_of::<T>().await?;
        let target = &target;
        let at = &at;
        // A unique task takes its lock now, not when it falls due.
        self.guarded(task, EnqueueOptions::new(), |id, lock| async move {
            let (id, headers, payload) = self.prepare_as(task, id, |headers: &mut HeaderMap| {
                headers.insert(NATS_SCHEDULE, format!("@at {at}").as_str());
                headers.insert(NATS_SCHEDULE_TARGET, target.as_str());
                headers.insert(DUE_AT, unix_millis(due).to_string().as_str());
                Lock::mark(lock.as_ref(), headers);
            })?;
            let subject = self
                .names()
                .schedule_subject(T::QUEUE, T::NAME, &id.to_string());
            let duplicate = self
                .publish_stored::<T>(subject.clone().into(), headers, payload)
                .await?
                .duplicate;
            tracing::debug!(%id, duplicate, "scheduled");
            // A duplicate's state was recorded by the publish that stored it.
            if !duplicate && self.tracks(T::QUEUE) {
                let mut info = TaskInfo::new(id, T::NAME, T::QUEUE, TaskState::Scheduled);
                info.enqueued_at = Some(SystemTime::now());
                info.due_at = Some(due);
                info.schedule = Some(subject);
                self.record_initial_state(&info).await;
            }
            Ok(duplicate)
        })
        .await
    }

    /// Cancels delayed task `id` of type `T` if it is still waiting: returns
    /// `true` if its schedule was removed (it will not run), `false` if
    /// there was none, because it already fell due (it is then an ordinary
    /// queued or finished task), was cancelled before, or was never delayed.
    ///
    /// ```no_run
    /// # #[natask_runtime::task(queue = "emails")]
    /// # async fn remind(to: String) {}
    /// # async fn demo(client: natask_runtime::Client, id: natask_runtime::TaskId) -> Result<(), Box<dyn std::error::Error>> {
    /// if !client.cancel_scheduled::<Remind>(id).await? {
    ///     println!("too late: {id} already fell due");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn cancel_scheduled<T: Task>(&self, id: TaskId) -> Result<bool, CancelError> {
        let error = |source: async_nats::Error| CancelError::Purge {
            task: T::NAME,
            queue: T::QUEUE,
            id,
            source,
        };
        let stream = self
            .jetstream()
            .get_stream_no_info(self.names().queue_stream(T::QUEUE))
            .await
            .map_err(|e| error(e.into()))?;
        let subject = self
            .names()
            .schedule_subject(T::QUEUE, T::NAME, &id.to_string());
        match stream.purge().filter(subject).await {
            Ok(purged) => Ok(purged.purged > 0),
            // No stream, so nothing was ever scheduled on it.
            Err(e) if is_stream_not_found(&e) => Ok(false),
            Err(e) => Err(error(e.into())),
        }
    }
}

pub(crate) fn is_stream_not_found(e: &async_nats::jetstream::stream::PurgeError) -> bool {
    use async_nats::jetstream::stream::PurgeErrorKind;
    matches!(
        e.kind(),
        PurgeErrorKind::JetStream(js) if js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// `t` in RFC 3339, UTC, with milliseconds (`2026-03-01T12:00:00.250Z`);
/// the server honours the fraction. `None` past the year 9999.
fn rfc3339(t: SystemTime) -> Option<String> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    let secs = since.as_secs();
    let (days, time) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    (year <= 9999).then(|| {
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            time / 3600,
            time % 3600 / 60,
            time % 60,
            since.subsec_millis()
        )
    })
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn due_times_are_rfc3339_utc_with_millis() {
        assert_eq!(rfc3339(at(0, 0)).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(at(951_782_400, 7)).unwrap(),
            "2000-02-29T00:00:00.007Z"
        );
        assert_eq!(
            rfc3339(at(1_772_366_400, 250)).unwrap(),
            "2026-03-01T12:00:00.250Z"
        );
        assert_eq!(
            rfc3339(at(253_402_300_799, 999)).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339(at(253_402_300_800, 0)), None);
    }

    #[test]
    fn every_day_of_eight_centuries_follows_the_previous() {
        let month_len = |y: u64, m: u64| match m {
            2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut previous = civil_from_days(0);
        assert_eq!(previous, (1970, 1, 1));
        for days in 1..146_097 * 2 {
            let (y, m, d) = civil_from_days(days);
            let last = previous.2 == month_len(previous.0, previous.1);
            let next_day = !last && (y, m, d) == (previous.0, previous.1, previous.2 + 1);
            let next_month =
                last && previous.1 < 12 && (y, m, d) == (previous.0, previous.1 + 1, 1);
            let next_year = last && previous.1 == 12 && (y, m, d) == (previous.0 + 1, 1, 1);
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {:?}",
                (y, m, d)
            );
            previous = (y, m, d);
        }
    }
}
